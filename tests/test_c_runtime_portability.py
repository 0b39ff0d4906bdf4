"""The C runtime builds warning-free for every Cortex-M, needs nothing from libc but
memset/memcpy, is integer-only, and every kernel in its header is defined and mirrored."""
from __future__ import annotations

import pytest

from . import _cbuild as cb
from ._ckernels import node


# ---- portability and the integer-only rule -----------------------------------------------

ARM_CPUS = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


@pytest.mark.parametrize("cpu", ARM_CPUS + ["cortex-m0"])
def test_arm_cross_compile_clean(cpu, tmp_path):
    """Every runtime source builds warning-free for each Cortex-M, and the objects need no
    symbol from outside the runtime but memset/memcpy (which GCC may emit for any
    freestanding code) and, on the M0, the 64-bit multiply helper: no other libc, no
    soft-float helpers (__aeabi_f*/d*), and on the M0, which has no divide instruction,
    no division helpers (__aeabi_idiv...)."""
    import shutil
    import subprocess
    gcc, nm = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-nm")
    if gcc is None or nm is None:
        pytest.skip("arm-none-eabi-gcc is missing")
    srcs = [str(s) for s in sorted(cb.SRC.glob("*.c"))]
    subprocess.run([gcc, f"-mcpu={cpu}", "-mthumb", "-std=c99", "-Wall", "-Wextra", "-Werror",
                    "-O2", f"-I{cb.INCLUDE}", "-c", *srcs], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=120)
    objs = sorted(str(p) for p in tmp_path.glob("*.o"))
    assert len(objs) == len(srcs)
    undefined = subprocess.run([nm, "-u", *objs], capture_output=True, text=True, check=True).stdout
    names = {ln.split()[-1] for ln in undefined.splitlines() if ln.strip() and not ln.endswith(":")}
    allowed = {"memset", "memcpy", "memmove", "__aeabi_lmul", "__aeabi_memset", "__aeabi_memcpy"}
    assert names <= allowed, names - allowed


def _strip_c(text: str) -> str:
    """C source without comments, string and char literals (so a '/' in a comment or an
    include path does not count)."""
    import re
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', " ", text,
                  flags=re.S)


def test_runtime_is_integer_only():
    import re
    banned = {
        "float/double": r"\b(float|double|long\s+double)\b",
        "heap": r"\b(malloc|calloc|realloc|free|alloca)\b",
        "division": r"/",
        "modulo": r"%",
        "libc include": r"#\s*include\s*<(?!stdint\.h|stddef\.h|arm_acle\.h|arm_mve\.h)",
    }
    files = sorted(cb.SRC.glob("*.[ch]")) + sorted(cb.INCLUDE.glob("*.h"))
    assert len(files) > 10
    for f in files:
        code = _strip_c(f.read_text())
        for what, pattern in banned.items():
            m = re.search(pattern, code)
            assert m is None, f"{f.name}: {what}: ...{code[max(0, m.start() - 40):m.end() + 20]}..."


def test_every_header_kernel_is_defined_and_mirrored():
    """Each eq_<op>_s8 declared in eq_kernels.h has its source file, a _scratch_size
    companion, and an entry in edgeq.codegen.KERNELS / scratch_size (the C stage's registrations)."""
    import re
    from edgeq.codegen import KERNELS, KERNELS_S4
    from edgeq.codegen import scratch_size
    header = _strip_c((cb.INCLUDE / "eq_kernels.h").read_text())
    declared = set(re.findall(r"eq_status\s+(eq_\w+_s(?:4|8|16))\s*\(", header))
    assert declared == {f"eq_{n}_s8" for n in ("conv2d", "fully_connected", "add", "mul", "lut",
                                              "prelu", "maxpool", "avgpool", "softmax", "requant",
                                              "concat", "reshape", "transpose", "pad", "gather",
                                              "resize_bilinear", "matmul")} | {
        "eq_conv2d_s4", "eq_fully_connected_s4",  # int4 weights, packed two per byte
        "eq_gated_state_s16", "eq_narrow_s16_s8"}  # the recurrent state in int16
    for fn in declared:
        assert (cb.SRC / f"{fn}.c").is_file(), fn
        assert re.search(rf"size_t\s+{fn}_scratch_size\s*\(", header), fn
        getattr(cb.library(), fn)
        getattr(cb.library(), f"{fn}_scratch_size")
    assert set(v for v in KERNELS.values() if v) <= declared
    assert set(KERNELS_S4.values()) <= declared and set(KERNELS_S4) <= set(KERNELS)
    for op in KERNELS:
        if op not in ("QConv", "QGemm"):
            assert scratch_size(node(op)) == 0
