"""QAdd: TFLite ADD on int8 with numpy broadcasting.

sa = MBQM((a - a_zp) << left_shift, a_mult, a_shift); sb likewise;
y = clamp(y_zp + MBQM(sa + sb, y_mult, y_shift), act_min, act_max).
left_shift is 20 in TFLite: |a - a_zp| <= 255 < 2^8, so the shifted value is < 2^28 and the
input multipliers (<= 1/2) keep |sa + sb| < 2^28: nothing can overflow int32.
"""
from __future__ import annotations

from edgeq.fixedpoint import clamp
from edgeq.reference._common import clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QAdd")
def qadd(node, a, b):
    at = node.attrs
    ls = int(at.get("left_shift", 20))
    what = f"{node.name} (QAdd)"
    mbqm = lambda x, m, s: mbqm_checked(x, m, s, what)  # noqa: E731
    sa = mbqm((i64(a) - int(at["a_zp"])) << ls, int(at["a_mult"]), int(at["a_shift"]))
    sb = mbqm((i64(b) - int(at["b_zp"])) << ls, int(at["b_mult"]), int(at["b_shift"]))
    y = int(at["y_zp"]) + mbqm(sa + sb, int(at["y_mult"]), int(at["y_shift"]))
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(y, lo, hi))
