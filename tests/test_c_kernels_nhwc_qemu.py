"""The channels-last kernels' DSP and MVE variants on the QEMU boards that have them, against
the integer reference (the cases of tests/_nhwc_cases.py with constants packed for the
variant: a self-checking firmware, as tests/test_c_kernels_qemu.py does for eq_kernels.h).

DSP (__ARM_FEATURE_DSP): Cortex-M4 (mps2-an386), Cortex-M7 (mps2-an500), Cortex-M33
(mps2-an505); MVE (Helium): Cortex-M55 (mps3-an547, hard-float ABI so MVE is enabled).
The portable _c variants run in the same firmware on every board (a second check of the
oracle on real Arm code generation). QEMU enforces each core's ISA, so this is also the check
that DSP/MVE instructions appear only where the core has them. Default run: a subset per
board; the full grid is slow.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from edgeq.runtime_c import packing

from . import _cbuild as cb
from . import _nhwc_cases as nc
from .test_c_kernels_qemu import BOARDS, HARNESS, Firmware

pytestmark = pytest.mark.qemu

ISA = {"cortex-m4": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp", "cortex-m55": "mve"}
FLOAT_ABI = {"cortex-m55": "hard"}  # MVE needs the hard-float ABI; the others build soft
# kernels with a variant for each ISA (the rest run their _c variant on that board)
ALL = {"conv", "pointwise", "depthwise", "dw3x3", "fc", "add", "maxpool", "avgpool"}
VARIANTS = {"dsp": ALL, "mve": ALL}


def _call(case: nc.Case, isa: str) -> str:
    args = ["&p"]
    for role, _, _ in case.arrays:
        rq = "(const eq_rq4 *)@rq" if isa == "mve" else "(const eq_rq *)@rq"
        args.append(rq if role == "rq" else "(const int8_t *)@w" if role == "w" else f"@{role}")
    if case.scratch:
        args.append("SCRATCH")
    return f"{case.fn(isa)}({', '.join(args)}, out)"


def firmware(isa: str, subset: bool, kinds=None) -> tuple[str, set[str]]:
    """A firmware checking every case (of `kinds`, default all) with the ISA's variant
    where the kernel has one and with the _c variant (constants packed for "c") otherwise;
    and the functions it calls."""
    fw = Firmware()
    called = set()
    for kind, build in nc.BUILDERS.items():
        if kinds is not None and kind not in kinds:
            continue
        for mine, portable in zip(build(isa, subset), build("c", subset)):
            case, variant = (mine, isa) if mine.kernel in VARIANTS[isa] else (portable, "c")
            called.add(case.fn(variant))
            if case.scratch:  # the Python mirror of the scratch size equals the kernel's
                want = packing.scratch_bytes(case.kernel, variant, case.fields)
                fields = ", ".join(f".{k} = {int(v)}" for k, v in case.fields.items())
                fw.blocks.append(f"    {{ static const {case.ptype} p = {{{fields}}};\n"
                                 f"      if ({case.fn(variant)}_scratch_size(&p) != {want}u) {{\n"
                                 f'          printf("scratch size of {case.fn(variant)}\\n"); ++bad; }} }}')
            fw.case(_call(case, variant), case.ptype, case.fields, {r: (a, t) for r, a, t in case.arrays},
                    case.expected, ("scratch_buf + 1",) if case.scratch else ("NULL",))
    src = fw.source().replace('#include "eq_kernels.h"', '#include "eq_kernels_nhwc.h"')
    # packed weights are read as words: align every array as generated code will
    return src.replace("static const int8_t c", "static const int8_t __attribute__((aligned(8))) c"), called


def run_board(board: str, subset: bool, tmp_path, kinds=None):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    machine, cpu, flash, ram = BOARDS[board]
    source, called = firmware(ISA[board], subset, kinds)
    (tmp_path / "main.c").write_text(source)
    elf = tmp_path / "fw.elf"
    build = subprocess.run(
        ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", f"-mfloat-abi={FLOAT_ABI.get(board, 'soft')}", "-std=c99",
         "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-Wno-unused-variable", f"-I{cb.INCLUDE}",
         "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles",
         f"-Wl,--defsym=FLASH_ORIGIN={flash}", f"-Wl,--defsym=RAM_ORIGIN={ram}",
         "-T", str(HARNESS / "link.ld"), str(HARNESS / "startup.c"), str(tmp_path / "main.c"),
         *map(str, sorted(cb.SRC.glob("*.c"))), "-o", str(elf)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=120)
    assert "edgeq kernels: 0 failures" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0
    # every variant ran (it is in the image), and uses the extension (objdump calls VMLADAVA "vmlava")
    isa = ISA[board]
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    assert all(f" {fn}\n" in symbols for fn in called) and all(fn.endswith(isa) for fn in called), called
    for kernel, insn in (("pointwise", {"dsp": "smlad", "mve": "vmlava"}), ("dw3x3", {"dsp": "smlabb", "mve": "vmullb"})):
        dis = subprocess.run(["arm-none-eabi-objdump", "-marmv8.1-m.main" if isa == "mve" else "-marmv7e-m",
                              f"--disassemble=eq_nhwc_{kernel}_s8_{isa}", str(elf)], capture_output=True, text=True).stdout
        assert insn[isa] in dis, (kernel, isa)


@pytest.mark.parametrize("board", list(ISA))
def test_nhwc_kernels_on_qemu(board, tmp_path):
    run_board(board, True, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(nc.BUILDERS))
@pytest.mark.parametrize("board", list(ISA))
def test_nhwc_kernels_on_qemu_full_grid(board, kind, tmp_path):
    run_board(board, False, tmp_path, {kind})
