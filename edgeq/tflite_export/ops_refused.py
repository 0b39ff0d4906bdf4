"""Ops edgeq does not export to TFLite, each with the reason (docs/tflite.md).

QLut: edgeq's unary non-linearities are 256-entry tables computed from the float
function (round half to even); TFLite's LOGISTIC / TANH / HARD_SWISH / LEAKY_RELU /
GELU int8 kernels compute their own fixed-point approximations (or their own tables from
different rounding), so outputs would differ in some entries.
QPrelu: TFLite's PRELU quantizes the slope to int8 with its own scale and multiplies
(x - zp) * (alpha - alpha_zp) before one rescale; edgeq applies the exact slope as a
per-channel multiplier. The results differ whenever the int8 slope is not exact.
"""
from __future__ import annotations

from edgeq.tflite_export.convert import converts, refuse

REASONS = {
    "QLut": "edgeq's lookup-table semantics for {fn} differ from TFLite's fixed-point "
            "int8 kernels (LOGISTIC/TANH/HARD_SWISH/...), so the outputs would not be "
            "bit-identical",
    "QPrelu": "TFLite's PRELU quantizes the slope to int8 and rescales once; edgeq applies "
              "the exact slope per channel, so the outputs would not be bit-identical",
}


@converts(*REASONS)
def convert_refused(ex, node):
    raise refuse(node, REASONS[node.op].format(fn=node.attr("fn", "this function")))
