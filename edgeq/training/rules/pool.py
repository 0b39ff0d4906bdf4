"""Pooling backward.

QAvgPool: y[o] = mean of the window's n_o taps, so G_x[i] = sum over windows o holding i
of G_y[o] / n_o. Integer: m_t[o] = MBQM(m[o], mult[n_o], shift[n_o]) with the real
multiplier 2^j / n_o (one pair per possible count, compile time), acc[i] = sum of m_t over
the windows holding i, G_x = normalize(acc, e - j). j is the largest integer with
sum over o holding i of (L 2^j / n_o + 1) <= 2^31 - 1 for every i (MBQM adds at most 1)
and every multiplier's shift <= 16 (MBQM's left shift of |m| <= 2^14 fits int32).
Global pooling over 7x7: one window per input, n = 49, j = 21 (2^21/49 has shift 16).
With count_include_pad every n is kH*kW and padding taps drop their share. The forward's
clamp is the int8 format's: no mask.

QMaxPool: the gradient goes to the tap that won the max (the first in kernel row-major
order among equal values; padding never wins), so the input x is kept.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from edgeq.reference._common import check_int32, pool_out_size, spatial_attrs, window_taps
from edgeq.training.gradient import i64, limit
from edgeq.ops import implements

INT32_LIMIT = (1 << 31) - 1
MAX_SHIFT = 16


def _windows(node, x_shape):
    kh, kw = (int(k) for k in node.attr("kernel"))
    strides, pads, dil = spatial_attrs(node)
    h, w = x_shape[2], x_shape[3]
    ho = pool_out_size(h, kh, strides[0], pads[0], pads[2], dil[0])
    wo = pool_out_size(w, kw, strides[1], pads[1], pads[3], dil[1])
    taps = [(rows, rin, cols, cin) for rows, rin in window_taps(h, ho, kh, strides[0], pads[0], dil[0])
            for cols, cin in window_taps(w, wo, kw, strides[1], pads[1], dil[1])]
    return ho, wo, taps


def _counts(node, x_shape) -> np.ndarray:
    ho, wo, taps = _windows(node, x_shape)
    if node.attr("count_include_pad", 0):
        return np.full((ho, wo), len(taps), dtype=np.int64)
    return sum((rin[:, None] & cin[None, :]).astype(np.int64) for _, rin, _, cin in taps)


def prepare_avg(node, info) -> dict:
    x_shape = info.graph.tensors[node.inputs[0]].shape
    counts = _counts(node, x_shape)
    _, _, taps = _windows(node, x_shape)
    lim = limit(info.options.grad_bits)
    ns = sorted({int(n) for n in counts.ravel()})
    j = math.floor(math.log2(INT32_LIMIT / lim)) + math.ceil(math.log2(max(ns)))
    for j in range(j, j - 64, -1):
        pairs = {n: quantize_multiplier(2.0 ** j / n) for n in ns}
        if max(s for _, s in pairs.values()) > MAX_SHIFT:
            continue
        per_window = lim * 2.0 ** j / counts + 1
        load = np.zeros(x_shape[2:], dtype=np.float64)
        for rows, rin, cols, cin in taps:
            np.add.at(load, (rows[:, None], cols[None, :]), np.where(rin[:, None] & cin[None, :], per_window, 0))
        if load.max() <= INT32_LIMIT:
            size = max(ns) + 1
            mult = np.zeros(size, np.int64)
            shift = np.zeros(size, np.int64)
            for n, (m, s) in pairs.items():
                mult[n], shift[n] = m, s
            return {"counts": counts, "pmult": mult, "pshift": shift, "pexp": j}
    raise EdgeqError(f"{node.name}: no average-pool gradient scale fits int32", "report this model")


def _scatter(node, x_shape, values: np.ndarray) -> np.ndarray:
    """acc[i] = sum of values[o] over the windows o whose inside taps include i."""
    _, _, taps = _windows(node, x_shape)
    acc = np.zeros(x_shape, dtype=np.int64)
    for rows, rin, cols, cin in taps:
        inside = rin[:, None] & cin[None, :]
        np.add.at(acc, (slice(None), slice(None), rows[:, None], cols[None, :]), np.where(inside, values, 0))
    return acc


@implements("backward", "QAvgPool", prepare=prepare_avg)
def avgpool_backward(ctx, node, g):
    if not ctx.wants(node, 0):
        return {}
    c = ctx.consts(node)
    counts = c["counts"]
    mt = multiply_by_quantized_multiplier(g.m, c["pmult"][counts], c["pshift"][counts])
    acc = _scatter(node, ctx.shape(node.inputs[0]), mt)
    check_int32(acc, f"{node.name} (average-pool gradient)")
    return {0: ctx.normalize(acc, g.e - c["pexp"])}


def prepare_max(node, info) -> dict:
    return {"keep": [node.inputs[0]]}


@implements("backward", "QMaxPool", prepare=prepare_max)
def maxpool_backward(ctx, node, g):
    if not ctx.wants(node, 0):
        return {}
    x = i64(ctx.kept(node.inputs[0]))
    _, _, taps = _windows(node, x.shape)
    best = None
    winner = np.zeros(g.m.shape, dtype=np.int64)
    for t, (rows, rin, cols, cin) in enumerate(taps):
        inside = rin[:, None] & cin[None, :]
        v = np.where(inside, x[:, :, rows[:, None], cols[None, :]], -1 << 20)
        better = v > best if best is not None else np.ones(v.shape, dtype=bool)
        best = np.where(better, v, best) if best is not None else v
        winner = np.where(better, t, winner)
    acc = np.zeros(x.shape, dtype=np.int64)
    for t, (rows, rin, cols, cin) in enumerate(taps):
        np.add.at(acc, (slice(None), slice(None), rows[:, None], cols[None, :]), np.where(winner == t, g.m, 0))
    check_int32(acc, f"{node.name} (max-pool gradient)")
    return {0: ctx.normalize(acc, g.e)}
