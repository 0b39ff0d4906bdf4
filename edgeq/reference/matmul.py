"""QMatMul: TFLite BATCH_MATMUL on int8, numpy batch broadcasting.
acc[..., m, n] = sum_k (a[..., m, k] - a_zp) (b[..., k, n] - b_zp)   (|acc| <= K 255^2, int32)
y = clamp(y_zp + MBQM(acc, y_mult, y_shift), act_min, act_max)."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.reference._common import check_int32, clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QMatMul")
def qmatmul(node, a, b):
    at = node.attrs
    acc = np.matmul(i64(a) - int(at["a_zp"]), i64(b) - int(at["b_zp"]))
    check_int32(acc, f"{node.name} (QMatMul)")
    y = int(at["y_zp"]) + mbqm_checked(acc, int(at["y_mult"]), int(at["y_shift"]), f"{node.name} (QMatMul)")
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(y, lo, hi))
