"""QRequant: TFLite QUANTIZE int8 -> int8, y = clamp(y_zp + MBQM(x - x_zp, mult, shift),
-128, 127). |x - x_zp| <= 255, so any shift <= 23 keeps the left shift inside int32."""
from __future__ import annotations

from edgeq.fixedpoint import clamp
from edgeq.reference._common import i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QRequant")
def qrequant(node, x):
    at = node.attrs
    y = int(at["y_zp"]) + mbqm_checked(i64(x) - int(at["x_zp"]), int(at["mult"]), int(at["shift"]),
                                       f"{node.name} (QRequant)")
    return to_int8(clamp(y, -128, 127))
