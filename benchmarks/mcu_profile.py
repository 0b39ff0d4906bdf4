"""What a measured interval executed: the functions it ran (their code bytes) and its
instruction mix, from the plugin's per-address counts and the firmware's disassembly.

Code bytes of a layer = the sizes of the kernel library's functions that executed at least
one instruction in the layer's interval (libc's memcpy/memset and the harness glue are not
kernel code). A model's code bytes = the union over its layers.
"""
from __future__ import annotations

import bisect
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from elftools.elf.elffile import ELFFile

CLASSES = ("load", "store", "branch", "mac", "simd", "alu")
_LOAD = re.compile(r"^(ldr|ldm|pop|vldr|vldm|vld[1-4]|vpop)")
_STORE = re.compile(r"^(str|stm|push|vstr|vstm|vst[1-4]|vpush)")
_COND = "eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_BRANCH = re.compile(rf"^(b|bl|blx|bx|b({_COND})|cbz|cbnz|tbb|tbh|le|letp|wls|wlstp|dls|dlstp)$")
_MAC = re.compile(r"^(mla|mls|mul|smla|smul|smmul|smmla|smmls|umull|umlal|smlal|smull|sdiv|udiv|usad|"
                  r"vmla|vmul|vqdmulh|vqrdmulh|vmlav|vmladav|vmlsdav|vrmlaldavh|vmlaldav|vmull)")
_SIMD = re.compile(r"^(sxtb16|sxtab16|uxtb16|uxtab16|pkh|sadd|ssub|qadd|qsub|shadd|uadd|sel|ssat|usat|v)")


def classify(mnemonic: str) -> str:
    """One of CLASSES for an objdump mnemonic (IT counts as alu, MVE/FP vector ops as simd)."""
    m = mnemonic.lower()
    if _LOAD.match(m):
        return "load"
    if _STORE.match(m):
        return "store"
    if _BRANCH.match(m.split(".")[0]):
        return "branch"
    if _MAC.match(m):
        return "mac"
    if _SIMD.match(m):
        return "simd"
    return "alu"


@lru_cache(maxsize=16)
def disassembly(elf: Path, mve: bool) -> dict[int, str]:
    """address -> mnemonic for every instruction of the ELF's code."""
    cmd = ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)]
    if mve:
        cmd.insert(1, "-marmv8.1-m.main")
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)", line)
        if m:
            out[int(m.group(1), 16)] = m.group(2)
    return out


@lru_cache(maxsize=16)
def functions(elf: Path) -> tuple[list[int], list[tuple[str, int]]]:
    """Sorted function start addresses and their (name, size)."""
    items = []
    with open(elf, "rb") as f:
        tab = ELFFile(f).get_section_by_name(".symtab")
        for s in tab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 0:
                items.append((int(s["st_value"]) & ~1, s.name, int(s["st_size"])))
    items.sort()
    return [a for a, _, _ in items], [(n, z) for _, n, z in items]


def functions_run(elf: Path, counts: dict[int, int]) -> dict[str, int]:
    """{function name: size} of every function with an executed instruction."""
    starts, info = functions(elf)
    ran = {}
    for addr in counts:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < starts[i] + info[i][1]:
            ran[info[i][0]] = info[i][1]
    return ran


def kernel_code_bytes(elf: Path, counts: dict[int, int], kernel_functions: set[str]) -> dict[str, int]:
    return {n: z for n, z in functions_run(elf, counts).items() if n in kernel_functions}


def mix(elf: Path, counts: dict[int, int], mve: bool) -> dict[str, int]:
    """Executed instructions per class (load, store, branch, mac, simd, alu)."""
    dis = disassembly(elf, mve)
    out = dict.fromkeys(CLASSES, 0)
    for addr, n in counts.items():
        out[classify(dis.get(addr, "?"))] += n
    return out


def spec_functions(elf: Path) -> set[str]:
    """The shape-specialised kernel instances a harness defines (eq_spec_*)."""
    _, info = functions(elf)
    return {n for n, _ in info if n.startswith("eq_spec_")}


def layer_functions(elf: Path) -> set[str]:
    """The layers edgeq's generated code compiles from a kernel body for their shape
    (model.c's static l<i>_<kind>: codegen.ops_nhwc.specialised): kernel code too."""
    _, info = functions(elf)
    return {n for n, _ in info if re.fullmatch(r"l\d+_(pointwise|dw3x3|conv)", n)}


def library_functions(archive: Path) -> set[str]:
    """Names of the functions an archive (or object) defines."""
    text = subprocess.run(["arm-none-eabi-nm", "--defined-only", str(archive)],
                          capture_output=True, text=True, check=True).stdout
    return {ln.split()[-1] for ln in text.splitlines() if re.match(r"^[0-9a-f]+ [tT] ", ln)}


def annotated(elf: Path, counts: dict[int, int], mve: bool, top: int = 60) -> str:
    """The executed instructions in address order with their counts (the `top` hottest
    functions' bodies): where a kernel spends its instructions."""
    dis = disassembly(elf, mve)
    starts, info = functions(elf)
    lines = []
    for addr in sorted(counts, key=lambda a: -counts[a])[:top]:
        i = bisect.bisect_right(starts, addr) - 1
        name = info[i][0] if i >= 0 else "?"
        lines.append((addr, f"{counts[addr]:>10,}  {addr:08x}  {dis.get(addr, '?'):<10} {name}"))
    return "\n".join(t for _, t in sorted(lines))
