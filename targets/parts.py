"""The --board catalogue: real parts, their memories, and the cortex-m target that runs each.

A part (boards/parts.json) names its core's target (cortex-m4 / -m7 / -m33 / -m55: the QEMU
board that emulates that core) and the flash and SRAM a firmware links against. `--board`
builds for that target with the part's budgets instead of the target's default part
(MCUTarget.for_part; the driver's resolve_target); `--flash-size` / `--sram-size` override
either. A model that does not fit is told which parts of the catalogue it would fit
(`fitting_parts`).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from edgeq.errors import EdgeqError

PARTS_FILE = Path(__file__).resolve().parent / "boards" / "parts.json"


@lru_cache(maxsize=1)
def load_parts() -> dict[str, dict]:
    data = json.loads(PARTS_FILE.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def get_part(name: str) -> dict:
    parts = load_parts()
    key = name.strip().lower()
    if key not in parts:
        raise EdgeqError(f"unknown board {name!r}",
                         f"choose one of: {', '.join(parts)} (`edgeq targets` lists them with their memories), "
                         "or give --target cortex-mN with --flash-size and --sram-size")
    return parts[key]


def fitting_parts(flash_bytes: int, ram_bytes: int) -> str:
    """The catalogue parts with at least this much flash and SRAM, as a fix names them."""
    fits = [f"{p['part'].split(' (')[0]} (--board {name})" for name, p in load_parts().items()
            if p["flash_bytes"] >= flash_bytes and p["ram_bytes"] >= ram_bytes]
    if not fits:
        return "no part in edgeq's --board catalogue has that much memory (`edgeq targets` lists them)"
    return "it would fit " + ", ".join(fits) + " (`edgeq targets` lists the parts)"
