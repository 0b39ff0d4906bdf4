"""edgeq's bundled C runtime (installed as edgeq.runtime_c): integer-only C99 kernels.

`include/eq_kernels.h` documents every kernel; `include/eq_fixedpoint.h` mirrors
edgeq/fixedpoint.py; `src/eq_<op>_s8.c` holds one kernel per op and dtype
(`src/eq_<op>_s4.c`: conv and FC with int4 weights packed two per byte). Generated
projects compile `sources()` with `-I include_dir()`.
The channels-last kernels (`include/eq_kernels_nhwc.h`, `src/eq_nhwc_<op>_s8_<isa>.c`, one
per ISA variant) take constants packed by `edgeq.runtime_c.packing`; code generation does
not call them yet (docs/nhwc_kernels.md).
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
INCLUDE_DIR = ROOT / "include"
SRC_DIR = ROOT / "src"

# ai.edgeq op -> the C function implementing it (None: no call, QReshape is a buffer alias)
KERNELS = {
    "QConv": "eq_conv2d_s8",
    "QGemm": "eq_fully_connected_s8",
    "QAdd": "eq_add_s8",
    "QMul": "eq_mul_s8",
    "QLut": "eq_lut_s8",
    "QPrelu": "eq_prelu_s8",
    "QMaxPool": "eq_maxpool_s8",
    "QAvgPool": "eq_avgpool_s8",
    "QSoftmax": "eq_softmax_s8",
    "QRequant": "eq_requant_s8",
    "QConcat": "eq_concat_s8",
    "QReshape": None,
    "QTranspose": "eq_transpose_s8",
    "QPad": "eq_pad_s8",
}

# ai.edgeq op -> the kernel for weights of <= 4 bits (packed two per byte, eq_kernels.h);
# same params, bias, requant and scratch as the KERNELS entry, only the weight layout differs
KERNELS_S4 = {
    "QConv": "eq_conv2d_s4",
    "QGemm": "eq_fully_connected_s4",
}
S4_MAX_BITS = 4


def kernel_for(op: str, weight_bits: int = 8) -> str | None:
    """The C function running `op` whose weights use `weight_bits` bits."""
    if weight_bits <= S4_MAX_BITS and op in KERNELS_S4:
        return KERNELS_S4[op]
    return KERNELS[op]


def include_dir() -> Path:
    return INCLUDE_DIR


def sources() -> list[Path]:
    """Every kernel source (compile them all; unused kernels are dropped by --gc-sections)."""
    return sorted(SRC_DIR.glob("*.c"))


def headers() -> list[Path]:
    return sorted(INCLUDE_DIR.glob("*.h")) + sorted(SRC_DIR.glob("*.h"))
