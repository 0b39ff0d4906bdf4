"""Run generated kernels on arrays under qemu-aarch64 (tests and benchmarks).

`run_kernels(cases, cpu)` links every case's kernel object with a generated C main into
one static aarch64 executable, runs it once under `qemu-aarch64 -cpu <cpu.qemu_cpu>` and
returns each case's outputs. The main reads inputs from files and puts every input and
const array so that it ends exactly at an inaccessible page (a read past the end
faults), and surrounds scratch and output buffers with guard bytes it checks after the
call (a write outside them is reported). With `count=True` the QEMU plugin of
edgeq.targets.profile_qemu counts the instructions of each kernel call.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.lower_tvm.cpus import Cpu
from edgeq.lower_tvm.kernel import Kernel
from edgeq.targets import c_project as cp
from edgeq.targets.elfsize import symbol
from edgeq.targets.profile_qemu import plugin_library

GUARD = 64  # bytes checked on each side of a written buffer

MAIN_HEAD = r"""#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__attribute__((noinline)) void edgeq_layer_mark(int i)
{
    __asm__ volatile("" : : "r"(i) : "memory");
}

static const char *dir;

static FILE *open_in(const char *name, const char *how)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, how);
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    return f;
}

/* n bytes read from a file, ending right before an inaccessible page */
static void *load_guarded(const char *name, size_t n)
{
    size_t page = 4096, pages = (n + page - 1) / page + 1;
    uint8_t *base = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *p = base + (pages - 1) * page - n;
    FILE *f = open_in(name, "rb");
    if (base == MAP_FAILED || mprotect(base + (pages - 1) * page, page, PROT_NONE) != 0) {
        exit(3);
    }
    if (fread(p, 1, n, f) != n) {
        fprintf(stderr, "short file %s\n", name);
        exit(2);
    }
    fclose(f);
    return p;
}

/* n writable bytes between two GUARD-byte fences of 0x5a */
static void *fenced(size_t n)
{
    uint8_t *p = malloc(n + 2 * GUARD_BYTES);
    memset(p, 0x5a, n + 2 * GUARD_BYTES);
    return p + GUARD_BYTES;
}

static int fence_ok(const void *q, size_t n)
{
    const uint8_t *p = (const uint8_t *)q - GUARD_BYTES;
    size_t i;
    for (i = 0; i < GUARD_BYTES; i++) {
        if (p[i] != 0x5a || p[GUARD_BYTES + n + i] != 0x5a) {
            return 0;
        }
    }
    return 1;
}

static void save(const char *name, const void *p, size_t n)
{
    FILE *f = open_in(name, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}
"""


def _case_c(i: int, k: Kernel) -> str:
    lines = [f"    {{   /* case {i}: {k.op} */"]
    for a in k.args:
        ctype = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t"}[a.dtype]
        if a.role in ("input", "const"):
            lines.append(f'        {ctype} *{a.name} = load_guarded("c{i}_{a.name}.bin", {a.nbytes});')
        else:
            lines.append(f"        {ctype} *{a.name} = fenced({a.nbytes});")
    lines.append(f'        printf("case {i}\\n");')
    lines.append("        fflush(stdout);")
    lines.append(f"        edgeq_layer_mark({2 * i});")
    lines.append(f"        {k.symbol}({', '.join(a.name for a in k.args)});")
    lines.append(f"        edgeq_layer_mark({2 * i + 1});")
    for a in k.args:
        if a.role in ("scratch", "output"):
            lines.append(f'        if (!fence_ok({a.name}, {a.nbytes})) {{ printf("fence {i} {a.name}\\n"); bad = 1; }}')
        if a.role == "output":
            lines.append(f'        save("c{i}_{a.name}.out", {a.name}, {a.nbytes});')
    lines.append("    }")
    return "\n".join(lines)


def main_c(kernels: list[Kernel]) -> str:
    protos = sorted({k.prototype() for k in kernels})
    body = "\n".join(_case_c(i, k) for i, k in enumerate(kernels))
    return (MAIN_HEAD.replace("GUARD_BYTES", str(GUARD)) + "\n" + "\n".join(protos) +
            "\n\nint main(int argc, char **argv)\n{\n    int bad = 0;\n    if (argc != 2) {\n"
            "        return 2;\n    }\n    dir = argv[1];\n" + body + "\n    return bad;\n}\n")


def link(kernels: list[Kernel], c_sources: list[Path], exe: Path, cpu: Cpu, extra: list[str] = ()) -> Path:
    gcc = cp.require_tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    objs = sorted({str(k.obj) for k in kernels})
    cp.run_tool([gcc, "-O2", cpu.gcc_flag, "-static", "-Wall", "-Wextra", *extra, *map(str, c_sources),
                 *objs, "-o", exe], "aarch64-linux-gnu-gcc (kernel harness)")
    return exe


def qemu_command(exe: Path, cpu: Cpu, plugin_out: Path | None = None, mark: int | None = None) -> list[str]:
    cmd = [cp.require_tool("qemu-aarch64", "qemu-user"), "-cpu", cpu.qemu_cpu]
    if plugin_out is not None:
        cmd += ["-plugin", f"{plugin_library()},mark={mark:x},out={plugin_out}"]
    return cmd + [str(exe)]


def run_kernels(cases: list[tuple[Kernel, dict[str, np.ndarray]]], cpu: Cpu, count: bool = False,
                timeout: float = 600) -> tuple[list[dict[str, np.ndarray]], list[int] | None]:
    """Run each (kernel, {arg name: array}) once; returns the outputs per case and, with
    count=True, the instructions each kernel call executed."""
    kernels = [k for k, _ in cases]
    with tempfile.TemporaryDirectory(prefix="edgeq-tvm-") as tmp:
        tmp = Path(tmp)
        for i, (k, arrays) in enumerate(cases):
            for a in k.args:
                if a.role == "const":
                    data = a.data
                elif a.role == "input":
                    data = arrays[a.name]
                else:
                    continue
                data = np.ascontiguousarray(data, dtype=a.dtype)
                if data.nbytes != a.nbytes:
                    raise ValueError(f"case {i}: {a.name} has {data.nbytes} bytes, the kernel takes {a.nbytes}")
                (tmp / f"c{i}_{a.name}.bin").write_bytes(data.tobytes())
        (tmp / "main.c").write_text(main_c(kernels))
        exe = link(kernels, [tmp / "main.c"], tmp / "harness", cpu)
        counts_file = tmp / "counts.txt"
        mark = None
        if count:
            mark = symbol(exe, "edgeq_layer_mark")[0]
        res = subprocess.run(qemu_command(exe, cpu, counts_file if count else None, mark) + [str(tmp)],
                             capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise EdgeqError(f"the kernel harness failed under qemu-aarch64 (status {res.returncode}): "
                             f"{(res.stdout + res.stderr).strip()[-2000:]}", "this is an edgeq bug")
        outs = []
        for i, (k, _) in enumerate(cases):
            outs.append({a.name: np.fromfile(tmp / f"c{i}_{a.name}.out", dtype=a.dtype).reshape(a.shape)
                         for a in k.args if a.role == "output"})
        counts = None
        if count:
            marks = [int(l) for l in counts_file.read_text().splitlines() if l.strip().isdigit()]
            counts = [marks[2 * i + 1] - marks[2 * i] for i in range(len(cases))]
        return outs, counts
