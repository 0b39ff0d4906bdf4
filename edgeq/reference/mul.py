"""QMul: TFLite MUL on int8 with numpy broadcasting.
y = clamp(y_zp + MBQM((a - a_zp) * (b - b_zp), y_mult, y_shift), act_min, act_max);
the product is at most 255 * 255 < 2^16 in magnitude."""
from __future__ import annotations

from edgeq.fixedpoint import clamp
from edgeq.reference._common import clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QMul")
def qmul(node, a, b):
    at = node.attrs
    prod = (i64(a) - int(at["a_zp"])) * (i64(b) - int(at["b_zp"]))
    y = int(at["y_zp"]) + mbqm_checked(prod, int(at["y_mult"]), int(at["y_shift"]), f"{node.name} (QMul)")
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(y, lo, hi))
