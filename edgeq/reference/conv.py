"""QConv: int8 2-D convolution (groups, depthwise, dilation, asymmetric pads), NCHW.

acc[n,co,oh,ow] = bias[co] + sum_{ci in group(co), kh, kw inside} (x - x_zp) * w
y = clamp(y_zp + MBQM(acc, mult[co], shift[co]), act_min, act_max)

Padding contributes 0 to the sum: the reference pads (x - x_zp) with zeros, which is the
same as padding x with x_zp. A 1-D conv ([N, C, L]) is the 2-D one with H = 1.
Vectorised over batch, groups and output positions; one einsum per kernel tap.
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.reference._common import (check_int32, clamp_attrs, i64, mbqm_checked, pool_out_size,
                                   spatial_attrs, to_int8)
from edgeq.ops import implements


def conv_accumulate(node, x, w, bias, nd: int) -> np.ndarray:
    """int64 accumulators [N, Co, Ho, Wo] (bias included), checked to fit int32."""
    strides, pads, dilations = spatial_attrs(node, nd)
    if nd == 1:  # [N, C, L] -> [N, C, 1, L]
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dilations = (1,) + strides, (1,) + dilations
        pads = (0, pads[0], 0, pads[1])
    group = int(node.attr("group", 1))
    x_zp = int(node.attr("x_zp", 0))
    n, ci, h, wd = x.shape
    co, cig, kh, kw = w.shape
    if ci != cig * group or co % group:
        raise ValueError(f"{node.name}: channels {ci}->{co} do not split into {group} groups")
    ho = pool_out_size(h, kh, strides[0], pads[0], pads[2], dilations[0])
    wo = pool_out_size(wd, kw, strides[1], pads[1], pads[3], dilations[1])
    xs = np.pad(i64(x) - x_zp, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    xs = xs.reshape(n, group, cig, xs.shape[2], xs.shape[3])
    wg = i64(w).reshape(group, co // group, cig, kh, kw)
    acc = np.zeros((n, group, co // group, ho, wo), dtype=np.int64)
    for i in range(kh):
        r0 = i * dilations[0]
        for j in range(kw):
            c0 = j * dilations[1]
            patch = xs[:, :, :, r0:r0 + strides[0] * (ho - 1) + 1:strides[0],
                       c0:c0 + strides[1] * (wo - 1) + 1:strides[1]]
            if cig == 1:  # depthwise: a broadcast multiply is much faster than einsum
                acc += patch[:, :, :1] * wg[:, :, 0, i, j][None, :, :, None, None]
            else:
                acc += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j])
    acc = acc.reshape(n, co, ho, wo)
    if bias is not None:
        acc += i64(bias).reshape(1, co, 1, 1)
    check_int32(acc, f"{node.name} (QConv)")
    return acc


@implements("reference", "QConv")
def qconv(node, x, w, bias=None, mult=None, shift=None):
    nd = x.ndim - 2
    if nd not in (1, 2) or w.ndim != x.ndim:
        raise ValueError(f"{node.name}: QConv takes [N,C,H,W] (or [N,C,L]) input")
    acc = conv_accumulate(node, x, w, bias, nd)
    co = acc.shape[1]
    m = i64(mult).reshape(1, co, 1, 1)
    s = i64(shift).reshape(1, co, 1, 1)
    lo, hi = clamp_attrs(node)
    y = clamp(int(node.attr("y_zp", 0)) + mbqm_checked(acc, m, s, f"{node.name} (QConv)"), lo, hi)
    y = to_int8(y)
    return y[:, :, 0, :] if nd == 1 else y
