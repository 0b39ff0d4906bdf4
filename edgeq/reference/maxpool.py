"""QMaxPool: max over the window taps that fall inside the input (padding never wins),
then the act clamp; the output has the input's quantization. NCHW, floor-mode output size."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.reference._common import clamp_attrs, i64, pool_out_size, spatial_attrs, to_int8, window_taps
from edgeq.ops import implements


@implements("reference", "QMaxPool")
def qmaxpool(node, x):
    kh, kw = (int(k) for k in node.attr("kernel"))
    strides, pads, dil = spatial_attrs(node)
    n, c, h, w = x.shape
    ho = pool_out_size(h, kh, strides[0], pads[0], pads[2], dil[0])
    wo = pool_out_size(w, kw, strides[1], pads[1], pads[3], dil[1])
    best = np.full((n, c, ho, wo), np.iinfo(np.int64).min, dtype=np.int64)
    xi = i64(x)
    for rows, rin in window_taps(h, ho, kh, strides[0], pads[0], dil[0]):
        for cols, cin in window_taps(w, wo, kw, strides[1], pads[1], dil[1]):
            tap = xi[:, :, rows[:, None], cols[None, :]]
            inside = rin[:, None] & cin[None, :]
            best = np.where(inside, np.maximum(best, tap), best)
    if (best == np.iinfo(np.int64).min).any():
        raise ValueError(f"{node.name}: a pooling window lies entirely in the padding")
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(best, lo, hi))
