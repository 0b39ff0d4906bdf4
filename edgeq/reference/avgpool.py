"""QAvgPool: average of the window taps inside the input, divided without a division.

n = number of inside taps (kH*kW with count_include_pad, the padding taps then adding x_zp
each: padding is real 0.0). y = clamp(round_half_away_div(sum, n, recip[n], rshift[n])),
which equals TFLite's `(sum > 0 ? sum + n/2 : sum - n/2) / n` (C truncating division) for
every reachable sum, |sum| <= 128 n: `avgpool_recips` proves it at compile time.
Output quantization equals the input's (TFLite AVERAGE_POOL_2D requires it).
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp, exact_reciprocal, round_half_away_div
from edgeq.reference._common import clamp_attrs, i64, pool_out_size, spatial_attrs, to_int8, window_taps
from edgeq.ops import implements


def avgpool_recips(kernel_h: int, kernel_w: int) -> tuple[list[int], list[int]]:
    """Compile-time helper: the `recip` and `rshift` attribute lists (kH*kW + 1 entries,
    index = tap count n, entry 0 unused) with exact division for |sum| <= 128 n.

    The magnitude divided is |sum| + n//2 <= 128 n + n//2; exact_reciprocal checks the
    bound, and we keep recip < 2^31 (int32 in C) and rshift <= 62 (int64 product)."""
    recips, rshifts = [0], [0]
    for n in range(1, kernel_h * kernel_w + 1):
        r, s = exact_reciprocal(n, 128 * n + n // 2)
        if r >= 1 << 31 or s > 62:
            raise ValueError(f"avgpool_recips: window of {n} taps too large for int32 recip")
        recips.append(int(r))
        rshifts.append(int(s))
    return recips, rshifts


@implements("reference", "QAvgPool")
def qavgpool(node, x):
    kh, kw = (int(k) for k in node.attr("kernel"))
    strides, pads, dil = spatial_attrs(node)
    include_pad = bool(node.attr("count_include_pad", 0))
    x_zp = int(node.attr("x_zp", 0))
    recip = i64(node.attr("recip"))
    rshift = i64(node.attr("rshift"))
    if recip.size != kh * kw + 1 or rshift.size != kh * kw + 1:
        raise ValueError(f"{node.name}: recip/rshift need {kh * kw + 1} entries")
    n, c, h, w = x.shape
    ho = pool_out_size(h, kh, strides[0], pads[0], pads[2], dil[0])
    wo = pool_out_size(w, kw, strides[1], pads[1], pads[3], dil[1])
    total = np.zeros((n, c, ho, wo), dtype=np.int64)
    count = np.zeros((ho, wo), dtype=np.int64)
    xi = i64(x)
    for rows, rin in window_taps(h, ho, kh, strides[0], pads[0], dil[0]):
        for cols, cin in window_taps(w, wo, kw, strides[1], pads[1], dil[1]):
            inside = rin[:, None] & cin[None, :]
            pad_value = x_zp if include_pad else 0
            total += np.where(inside, xi[:, :, rows[:, None], cols[None, :]], pad_value)
            count += inside
    if (count == 0).any():
        raise ValueError(f"{node.name}: a pooling window lies entirely in the padding")
    if include_pad:
        count[:] = kh * kw
    y = round_half_away_div(total, count, recip[count], rshift[count])
    lo, hi = clamp_attrs(node)
    return to_int8(clamp(y, lo, hi))
