"""QGemm: int8 fully connected, y[n,c] = clamp(y_zp + MBQM(bias[c] + sum_k (x[n,k] - x_zp)
* w[c,k], mult[c], shift[c]), act_min, act_max). x [N, K] (more dims are flattened to K,
like ONNX Flatten before Gemm), w [Co, K]. Same as TFLite FULLY_CONNECTED."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.reference._common import check_int32, clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.ops import implements


@implements("reference", "QGemm")
def qgemm(node, x, w, bias=None, mult=None, shift=None):
    x2 = i64(x).reshape(x.shape[0], -1) - int(node.attr("x_zp", 0))
    if x2.shape[1] != w.shape[1]:
        raise ValueError(f"{node.name}: x has {x2.shape[1]} features, w expects {w.shape[1]}")
    acc = x2 @ i64(w).T  # int64 matmul: exact
    if bias is not None:
        acc = acc + i64(bias)[None, :]
    check_int32(acc, f"{node.name} (QGemm)")
    lo, hi = clamp_attrs(node)
    y = int(node.attr("y_zp", 0)) + mbqm_checked(acc, i64(mult)[None, :], i64(shift)[None, :],
                                                 f"{node.name} (QGemm)")
    return to_int8(clamp(y, lo, hi))
