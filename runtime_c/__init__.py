"""edgeq's bundled C runtime (installed as edgeq.runtime_c): integer-only C99 kernels.

`include/eq_kernels.h` documents every kernel; `include/eq_fixedpoint.h` mirrors
edgeq/fixedpoint.py; `src/eq_<op>_s8.c` holds one kernel per op and dtype
(`src/eq_<op>_s4.c`: conv and FC with int4 weights packed two per byte). Generated
projects compile `sources()` with `-I include_dir()`. Which kernel runs which op, and the
Python mirror of each `_scratch_size` companion, are the C stage's registrations
(edgeq/codegen/ops.py, kernels.py).
The channels-last kernels (`include/eq_kernels_nhwc.h`, `src/eq_nhwc_<op>_s8_<isa>.c`, one
per ISA variant) take constants packed by `edgeq.runtime_c.packing`; code generation does
not call them yet (docs/nhwc_kernels.md).
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
INCLUDE_DIR = ROOT / "include"
SRC_DIR = ROOT / "src"


def include_dir() -> Path:
    return INCLUDE_DIR


def sources() -> list[Path]:
    """Every kernel source (compile them all; unused kernels are dropped by --gc-sections)."""
    return sorted(SRC_DIR.glob("*.c"))


def headers() -> list[Path]:
    return sorted(INCLUDE_DIR.glob("*.h")) + sorted(SRC_DIR.glob("*.h"))
