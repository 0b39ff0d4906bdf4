"""A per-layer harness firmware: every layer of a model called alone on its real input,
between two calls of `bench_mark`, on a QEMU board, counted by edgeq's instruction plugin.

The backends (mcu_cmsis.py for CMSIS-NN, mcu_nhwc.py for edgeq's channels-last kernels)
turn a `Layer` into a `LayerCall`: file-scope arrays, set-up statements that run before
the first mark (buffer sizes, precomputed sums: what TFLite Micro does in Prepare), and the
one measured call. The firmware writes every layer's output to `outputs.bin` on the host
(semihosting) and prints its status, so the comparison with the integer reference is
np.array_equal in Python. Layer data lives in the board's large external RAM (0x60000000:
PSRAM on mps2-an500, DDR on mps3-an547), so whole models fit one firmware.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BOARDS = {  # cpu: (QEMU machine, compiler flags)
    "cortex-m7": ("mps2-an500", ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]),
    "cortex-m55": ("mps3-an547", ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"]),
}
SCRATCH_BYTES = 64 * 1024
LINK = """ENTRY(Reset_Handler)
MEMORY
{
    FLASH (rx)  : ORIGIN = 0x00000000, LENGTH = 512K
    RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 512K
    EXT   (rwx) : ORIGIN = 0x60000000, LENGTH = 16M
}
SECTIONS
{
    .text : { KEEP(*(.isr_vector)) *(.text .text.*) *(.rodata .rodata.*) KEEP(*(.init)) KEEP(*(.fini)) . = ALIGN(4); } > FLASH
    .ARM.exidx : { *(.ARM.exidx*) } > FLASH
    .init_array : { PROVIDE_HIDDEN(__preinit_array_start = .); PROVIDE_HIDDEN(__preinit_array_end = .);
                    PROVIDE_HIDDEN(__init_array_start = .); KEEP(*(.init_array*)); PROVIDE_HIDDEN(__init_array_end = .); } > FLASH
    .fini_array : { PROVIDE_HIDDEN(__fini_array_start = .); KEEP(*(.fini_array*)); PROVIDE_HIDDEN(__fini_array_end = .); } > FLASH
    .layerdata : { *(.layerdata .layerdata.*) } > EXT
    _sidata = LOADADDR(.data);
    .data : ALIGN(4) { _sdata = .; *(.data .data.*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
    .bss (NOLOAD) : ALIGN(16) { _sbss = .; *(.bss .bss.*) *(COMMON) . = ALIGN(4); _ebss = .; } > RAM
    .heap (NOLOAD) : ALIGN(8) { end = .; PROVIDE(_end = .); . += 32K; __heap_end = .; } > RAM
    .stack (NOLOAD) : ALIGN(8) { __StackLimit = .; . += 16K; __StackTop = .; } > RAM
}
"""


@dataclass
class LayerCall:
    decls: list[str]              # file-scope C: the layer's arrays
    setup: list[str]              # statements before the measured call (not counted)
    call: str                     # the measured statement(s); set `st` (0 = success), write `out`
    expected: np.ndarray | None   # the bytes `out` must hold afterwards
    note: str = ""                # why a layer has no call
    supported: bool = True

    @classmethod
    def nothing(cls) -> "LayerCall":
        """A layer that runs no code in this backend (a reshape alias, a folded transpose)."""
        return cls([], [], "", None)

    @classmethod
    def unsupported(cls, why: str) -> "LayerCall":
        return cls([], [], "", None, note=why, supported=False)

    @property
    def runs(self) -> bool:
        return self.supported and bool(self.call)


def c_array(name: str, a: np.ndarray, ctype: str) -> str:
    vals = ",".join(str(int(v)) for v in np.ravel(a))
    return f"static const {ctype} {name}[{max(a.size, 1)}] LAYERDATA = {{{vals or '0'}}};"


def dims_nhwc(n: int, h: int, w: int, c: int) -> str:
    return f"{{{n}, {h}, {w}, {c}}}"


@dataclass
class Backend:
    name: str
    headers: list[str]
    locals: str                   # per-layer C locals (e.g. a CMSIS-NN context on the scratch)
    need: str                     # C expression: scratch bytes the layer asks for
    libraries: list[Path] = field(default_factory=list)
    include_dirs: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)  # extra C files compiled with the harness
    cflags: list[str] = field(default_factory=list)


def firmware_source(backend: Backend, calls: list[tuple[int, LayerCall]]) -> str:
    out_bytes = max([c.expected.size for _, c in calls if c.runs] + [1])
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <string.h>", *backend.headers,
             '#define LAYERDATA __attribute__((section(".layerdata"), aligned(16)))',
             f"static uint8_t scratch[{SCRATCH_BYTES}] __attribute__((aligned(16)));",
             f"static int8_t out[{out_bytes}] __attribute__((aligned(16)));",
             "void __attribute__((noinline)) bench_mark(int i) { __asm__ volatile(\"\" : : \"r\"(i) : \"memory\"); }"]
    runs = [(i, c) for i, c in calls if c.runs]
    for i, c in runs:
        lines += c.decls
        lines += [f"static int layer_{i}(void)", "{", "    int st = -1;", f"    {backend.locals}",
                  *(f"    {s}" for s in c.setup),
                  f"    if ((int32_t)({backend.need}) > {SCRATCH_BYTES}) return 1000;",
                  "    (void)scratch;",
                  f"    bench_mark({2 * i});", f"    {c.call}", f"    bench_mark({2 * i + 1});",
                  "    return st;", "}"]
    lines += ["void initialise_monitor_handles(void);", "int main(void)", "{", "    FILE *f;", "    int st;",
              "    initialise_monitor_handles();", '    f = fopen("outputs.bin", "wb");', "    if (f == NULL) return 3;"]
    for i, c in runs:
        n = c.expected.size
        lines += [f"    memset(out, 0x55, {n});", f"    st = layer_{i}();",
                  f'    printf("layer {i} status %d\\n", st);', f"    fwrite(out, 1, {n}, f);"]
    lines += ["    fclose(f);", "    return 0;", "}", ""]
    return "\n".join(lines)


@dataclass
class HarnessRun:
    instructions: dict[int, int]          # layer index -> instructions of its call
    outputs: dict[int, np.ndarray]        # layer index -> bytes the call wrote
    status: dict[int, int]
    profile: dict[int, dict[int, int]]    # layer index -> {instruction address: executions}
    elf: Path


def build_and_run(backend: Backend, cpu: str, calls: list[tuple[int, LayerCall]], work: Path) -> HarnessRun:
    from edgeq.targets import qemu
    from edgeq.targets.elfsize import symbol
    from edgeq.targets.profile_qemu import plugin_library
    machine, flags = BOARDS[cpu]
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.c").write_text(firmware_source(backend, calls))
    (work / "link.ld").write_text(LINK)
    elf = work / "fw.elf"
    cmd = ["arm-none-eabi-gcc", *flags, "-O2", "-std=c99", "-ffunction-sections", "-fdata-sections",
           *backend.cflags, *(f"-I{d}" for d in backend.include_dirs),
           "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections",
           "-Wl,--no-warn-rwx-segments", "-T", str(work / "link.ld"),
           str(ROOT / "targets" / "boards" / "startup.c"), str(work / "main.c"),
           *map(str, backend.sources), *map(str, backend.libraries), "-o", str(elf)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode:
        raise RuntimeError(f"{backend.name} harness for {cpu} does not build:\n{res.stderr[-4000:]}")
    mark = symbol(elf, "bench_mark")
    with tempfile.TemporaryDirectory() as tmp:
        counts, pcs = Path(tmp) / "counts.txt", Path(tmp) / "pcs.txt"
        run = qemu.run_firmware(machine, elf, timeout=1800, plugin=plugin_library(),
                                plugin_args={"mark": hex(mark[0] & ~1), "out": str(counts), "pcs": str(pcs)},
                                cwd=work)
        if run.status != 0:
            raise RuntimeError(f"{backend.name} harness on {machine} exited {run.status}: "
                               f"{run.stdout[-1000:]} {run.stderr[-1000:]}")
        marks = [int(v) for v in counts.read_text().split("\n") if v.strip().isdigit()]
        blocks = read_pcs(pcs)
    runs = [(i, c) for i, c in calls if c.runs]
    if len(marks) != 2 * len(runs):
        raise RuntimeError(f"expected {2 * len(runs)} marks, the plugin saw {len(marks)}")
    status = {int(m[0]): int(m[1]) for m in re.findall(r"layer (\d+) status (-?\d+)", run.stdout)}
    raw = np.fromfile(work / "outputs.bin", dtype=np.int8)
    outputs, instr, prof, pos = {}, {}, {}, 0
    for j, (i, c) in enumerate(runs):
        n = c.expected.size
        outputs[i] = raw[pos:pos + n].reshape(c.expected.shape)
        pos += n
        instr[i] = marks[2 * j + 1] - marks[2 * j]
        prof[i] = blocks[2 * j + 1]  # the block written at a mark covers the interval before it
    return HarnessRun(instr, outputs, status, prof, elf)


def read_pcs(path: Path) -> list[dict[int, int]]:
    """The plugin's pcs= file: one {address: count} per mark (and one at exit)."""
    blocks: list[dict[int, int]] = []
    for line in path.read_text().splitlines():
        if line.startswith("mark"):
            blocks.append({})
        elif line:
            a, n = line.split()
            blocks[-1][int(a, 16)] = int(n)
    return blocks
