"""Memory use read from an ELF (pyelftools): what the firmware costs in flash and RAM.

flash  = text + rodata + data   (initialised data is stored in flash and copied at reset)
static RAM = data + bss         (the arena lives in bss; the stack and heap reserves are
                                 the linker script's NOLOAD .stack/.heap, counted apart)
"""
from __future__ import annotations

from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

RESERVES = {".stack", ".heap"}


def section_sizes(path: Path) -> dict[str, int]:
    """Bytes per class of allocated section: text, rodata, data, bss, plus the reserves."""
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack_reserve": 0, "heap_reserve": 0}
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
                continue
            size = sec["sh_size"]
            if sec.name in RESERVES:
                sizes[sec.name[1:] + "_reserve"] += size
            elif sec["sh_type"] == "SHT_NOBITS":
                sizes["bss"] += size
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                sizes["text"] += size
            elif flags & SH_FLAGS.SHF_WRITE:
                sizes["data"] += size
            else:
                sizes["rodata"] += size
    return sizes


def symbol(path: Path, name: str) -> tuple[int, int] | None:
    """(address, size) of a symbol, or None."""
    with open(path, "rb") as f:
        tab = ELFFile(f).get_section_by_name(".symtab")
        if tab is None:
            return None
        for sym in tab.get_symbol_by_name(name) or []:
            return int(sym["st_value"]), int(sym["st_size"])
    return None


def memory_report(path: Path) -> dict[str, int]:
    """flash_bytes and static_ram_bytes of a linked firmware, plus the raw classes."""
    s = section_sizes(path)
    return {**s, "flash_bytes": s["text"] + s["rodata"] + s["data"], "static_ram_bytes": s["data"] + s["bss"]}


def symbol_sizes(path: Path, kind: str = "STT_FUNC") -> dict[str, int]:
    """{name: bytes} of a linked ELF's symbols of one kind: STT_FUNC (code), STT_OBJECT (data)."""
    with open(path, "rb") as f:
        tab = ELFFile(f).get_section_by_name(".symtab")
        if tab is None:
            return {}
        return {s.name: int(s["st_size"]) for s in tab.iter_symbols() if s["st_info"]["type"] == kind}


def function_sizes(path: Path) -> dict[str, int]:
    """{function name: bytes of code}."""
    return symbol_sizes(path, "STT_FUNC")


def layer_constant_bytes(build_dir: Path) -> dict[str, int]:
    """{layer name: bytes of its constants} in a C build's fw.elf: model.c names every array
    a layer defines l<index>_<role> (weights as packed for its kernel, biases,
    requantization constants, tables), <index> the firmware layer in build.json's list;
    each array counted 4-byte aligned, as carray.py writes them."""
    import json
    import re
    layers = json.loads((Path(build_dir) / "build.json").read_text())["layers"]
    out: dict[str, int] = {}
    for name, size in symbol_sizes(Path(build_dir) / "fw.elf", "STT_OBJECT").items():
        m = re.match(r"l(\d+)_", name)
        if m and int(m.group(1)) < len(layers):
            layer = layers[int(m.group(1))]
            out[layer] = out.get(layer, 0) + -(-size // 4) * 4
    return out
