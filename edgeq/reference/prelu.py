"""QPrelu: per-channel PRelu along axis 1.

d = x - x_zp; d >= 0: y = clamp(y_zp + MBQM(d, pos_mult, pos_shift))
              d <  0: y = clamp(y_zp + neg_sign[c] * MBQM(d, neg_mult[c], neg_shift[c]))
neg_* have C entries (or 1, a shared slope); the clamp is [act_min, act_max], by default
[-128, 127]. MBQM is odd (rounding is symmetric), so the sign trick equals a signed slope.
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.reference._common import clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QPrelu")
def qprelu(node, x, pos_mult, pos_shift, neg_mult, neg_shift, neg_sign):
    shape = [1] * x.ndim
    if x.ndim >= 2:
        shape[1] = -1
    per_c = lambda a: i64(a).reshape(shape) if np.size(a) > 1 else i64(a).reshape(-1)[0]  # noqa: E731
    d = i64(x) - int(node.attr("x_zp", 0))
    mbqm = lambda v, m, s: mbqm_checked(v, m, s, f"{node.name} (QPrelu)")  # noqa: E731
    pos = mbqm(d, int(np.ravel(pos_mult)[0]), int(np.ravel(pos_shift)[0]))
    neg = per_c(neg_sign) * mbqm(d, per_c(neg_mult), per_c(neg_shift))
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(int(node.attr("y_zp", 0)) + np.where(d >= 0, pos, neg), lo, hi))
