"""QConv / QGemm backward: clamp mask, input gradient by transposed conv, fused updates.

Real forward (requant rounding and int8 saturation are identities for the gradient):
Y = clamp(conv(X, W) + B) with X = s_x (x - x_zp), W[c] = s_w[c] w[c], B[c] = s_x s_w[c] b[c].
With the output gradient G = m * 2^e (mantissas |m| <= L = 2^(bits-2)):

1. mask: m_z = m where the output is inside the activation bounds (rules/clamp.py), else 0.
2. input gradient (only when an earlier update needs it), with the weights of the forward:
   G_X[ci, i] = sum over (co, tap) of s_w[co] w[co, ci, tap] G_Z[co, o(i, tap)]
   integer: m_s[co] = MBQM(m_z[co], gmult[co], gshift[co]) with the real multiplier
   s_w[co] * 2^j, then acc = conv_transpose(m_s, w) in int32 and G_X = normalize(acc,
   e - j). j is the largest integer with L * max(s_w) * 2^j + 1 <= cap,
   cap = (2^31 - 1) // (T * qmax), T = (Co/group) * kH * kW terms per input element
   (Co for QGemm): every |m_s| <= cap (MBQM adds at most 1 to the exact product), so
   |acc| <= T * qmax * cap < 2^31. The multiplier's shift stays <= 16 so MBQM's left
   shift of |m_z| <= 2^14 fits int32.
3. bias (if updated): Bsum[c] = sum over positions of m_z[c] (|Bsum| <= P * L < 2^31,
   P = output positions, checked), G_B = 2^e Bsum, then update.bias_step.
4. weights (if updated): m_w = round_shift(m_z, p) with the smallest p >= 0 such that
   P * 255 * (L >> p) <= 2^31 - 1; A[co, ci, tap] = sum over positions of
   (x - x_zp)[ci, i(tap)] * m_w[co] (padding taps add 0; |x - x_zp| <= 255), so |A| < 2^31;
   G_W = s_x 2^(e + p) A, then update.step per element and apply in place.
The order inside the node is fixed (it decides which draws a stochastic rounding uses):
input gradient, bias, weights.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier_array
from edgeq.reference._common import check_int32, spatial_attrs
from edgeq.training.gradient import i64, limit
from edgeq.ops import implements
from edgeq.training.rules.clamp import inside, mask_bounds, needs_output
from edgeq.training.update import (bias_limit, bias_multipliers, fraction_bits, momentum_multiplier,
                                   weight_multipliers)

INT32_LIMIT = (1 << 31) - 1
MAX_PRESCALE_SHIFT = 16  # |m| <= 2^14 shifted left by 16 stays below 2^31


def _per_channel(scale, co: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (co,)).copy()


def _prescale(s_w: np.ndarray, terms: int, qmax: int, lim: int, what: str):
    """(gmult, gshift, j) for the input gradient's per-channel multiplier s_w * 2^j."""
    cap = INT32_LIMIT // (terms * qmax)
    j = math.floor(math.log2((cap - 1) / (lim * float(s_w.max()))))
    for j in range(j, j - 64, -1):
        mult, shift = quantize_multiplier_array(s_w * 2.0 ** j)
        if lim * float(s_w.max()) * 2.0 ** j + 1 <= cap and int(shift.max()) <= MAX_PRESCALE_SHIFT:
            return mult, shift, j
    raise EdgeqError(f"{what}: no input-gradient scale fits int32", "report this model")


def _select(node, w: np.ndarray, channels) -> np.ndarray:
    """Weights that move: every weight reading a selected input channel."""
    if channels is None:
        return np.ones(w.shape, dtype=bool)
    chosen = np.zeros(w.shape[1] * (int(node.attr("group", 1)) if node.op == "QConv" else 1), dtype=bool)
    chosen[list(channels)] = True
    if node.op == "QGemm":
        return np.broadcast_to(chosen[None, :], w.shape).copy()
    co, cig = w.shape[:2]
    group = int(node.attr("group", 1))
    ci = (np.arange(co)[:, None] // (co // group)) * cig + np.arange(cig)[None, :]
    return np.broadcast_to(chosen[ci].reshape(co, cig, *([1] * (w.ndim - 2))), w.shape).copy()


def prepare(node, info) -> dict:
    g, opts = info.graph, info.options
    x, w_name = node.inputs[0], node.inputs[1]
    w = g.const(w_name)
    qx, qw = g.tensors[x].q, g.tensors[w_name].q
    co = int(w.shape[0])
    s_x, s_w, qmax = float(np.ravel(qx.scale)[0]), _per_channel(qw.scale, co), qw.qmax()
    lim = limit(opts.grad_bits)
    lo, hi = mask_bounds(node)
    c: dict = {"lo": lo, "hi": hi, "keep": [node.outputs[0]] if needs_output(node) else []}
    out_shape = g.tensors[node.outputs[0]].shape
    positions = int(np.prod(out_shape[2:], dtype=np.int64)) if node.op == "QConv" else 1
    if info.wants[0]:
        group = int(node.attr("group", 1)) if node.op == "QConv" else 1
        terms = (co // group) * int(np.prod(w.shape[2:], dtype=np.int64))
        c["gmult"], c["gshift"], c["gexp"] = _prescale(s_w, terms, qmax, lim, node.name)
    upd = info.update
    if upd is None:
        return c
    what = f"{node.name} update"
    if upd.bias:
        if positions * lim > INT32_LIMIT:
            raise EdgeqError(f"{node.name}: {positions} output positions overflow the bias gradient sum",
                             "train a later layer")
        c["bmult"], c["bshift"] = bias_multipliers(opts.lr, s_x, s_w, what)
        k = int(np.prod(w.shape[1:], dtype=np.int64))
        c["blimit"] = bias_limit(k, qmax, int(np.max(g.const(node.inputs[4]))))
    if upd.weights:
        frac = fraction_bits(opts.weight_update)
        p = 0
        while positions * 255 * (lim >> p) > INT32_LIMIT:
            p += 1
        c["wmult"], c["wshift"] = weight_multipliers(opts.lr, s_x, s_w, frac, what)
        c.update(wfit=p, frac_bits=frac, qmax=qmax, select=_select(node, w, upd.channels))
        c["keep"].append(x)
    if opts.momentum:
        c["mu"] = momentum_multiplier(opts.momentum)
    return c


def _as_2d(node, x_shape, w):
    """Conv geometry as 2-D (a 1-D conv is the 2-D one with H = 1)."""
    nd = len(x_shape) - 2
    strides, pads, dil = spatial_attrs(node, nd)
    if nd == 1:
        return (x_shape[0], x_shape[1], 1, x_shape[2]), w[:, :, None, :], (1,) + strides, \
            (0, pads[0], 0, pads[1]), (1,) + dil
    return tuple(x_shape), w, strides, pads, dil


def conv_input_grad(node, ms: np.ndarray, w: np.ndarray, x_shape) -> np.ndarray:
    """Transposed conv: sum of w * ms scattered back onto the input positions (int64)."""
    shape, w, strides, pads, dil = _as_2d(node, x_shape, i64(w))
    n, ci, h, wd = shape
    ms = ms.reshape(ms.shape[0], ms.shape[1], -1, ms.shape[-1])
    co, cig, kh, kw = w.shape
    group = int(node.attr("group", 1))
    ho, wo = ms.shape[2:]
    gx = np.zeros((n, group, cig, h + pads[0] + pads[2], wd + pads[1] + pads[3]), dtype=np.int64)
    mg = i64(ms).reshape(n, group, co // group, ho, wo)
    wg = w.reshape(group, co // group, cig, kh, kw)
    for i in range(kh):
        r0 = i * dil[0]
        for j in range(kw):
            c0 = j * dil[1]
            if cig == 1:
                contrib = np.einsum("ngohw,go->nghw", mg, wg[:, :, 0, i, j])[:, :, None]
            else:
                contrib = np.einsum("ngohw,goc->ngchw", mg, wg[:, :, :, i, j])
            gx[:, :, :, r0:r0 + strides[0] * (ho - 1) + 1:strides[0],
               c0:c0 + strides[1] * (wo - 1) + 1:strides[1]] += contrib
    gx = gx.reshape(n, ci, gx.shape[3], gx.shape[4])[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd]
    return gx.reshape(x_shape)


def conv_weight_grad(node, xs: np.ndarray, m: np.ndarray, w_shape) -> np.ndarray:
    """A[co, ci, tap] = sum over positions of (x - x_zp) * m (int64)."""
    shape, w0, strides, pads, dil = _as_2d(node, xs.shape, np.zeros(w_shape, np.int8))
    n, ci, h, wd = shape
    co, cig, kh, kw = w0.shape
    group = int(node.attr("group", 1))
    xp = np.pad(i64(xs).reshape(shape), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    xp = xp.reshape(n, group, cig, xp.shape[2], xp.shape[3])
    ho, wo = m.shape[-2] if m.ndim == 4 else 1, m.shape[-1]
    mg = i64(m).reshape(n, group, co // group, ho, wo)
    acc = np.zeros((group, co // group, cig, kh, kw), dtype=np.int64)
    for i in range(kh):
        r0 = i * dil[0]
        for j in range(kw):
            c0 = j * dil[1]
            patch = xp[:, :, :, r0:r0 + strides[0] * (ho - 1) + 1:strides[0],
                       c0:c0 + strides[1] * (wo - 1) + 1:strides[1]]
            acc[:, :, :, i, j] = np.einsum("ngchw,ngohw->goc", patch, mg)
    return acc.reshape(w_shape)


def _channel(a: np.ndarray, ndim: int) -> np.ndarray:
    """A per-output-channel vector shaped to broadcast along axis 1 of an ndim array."""
    return i64(a).reshape((1, -1) + (1,) * (ndim - 2))


@implements("backward", "QConv", "QGemm", prepare=prepare)
def backward(ctx, node, g):
    c = ctx.consts(node)
    m = g.m
    if c["lo"] is not None or c["hi"] is not None:
        m = np.where(inside(ctx.kept(node.outputs[0]), c["lo"], c["hi"]), m, 0)
    w = ctx.weight(node)
    out = {}
    if ctx.wants(node, 0):
        ms = multiply_by_quantized_multiplier(m, _channel(c["gmult"], m.ndim), _channel(c["gshift"], m.ndim))
        x_shape = ctx.shape(node.inputs[0])
        if node.op == "QGemm":
            acc = (ms @ i64(w)).reshape(x_shape)
        else:
            acc = conv_input_grad(node, ms, w, x_shape)
        check_int32(acc, f"{node.name} (input gradient)")
        out[0] = ctx.normalize(acc, g.e - c["gexp"])
    upd = ctx.update(node)
    if upd is not None and upd.bias:
        bsum = m.sum(axis=tuple(a for a in range(m.ndim) if a != 1))
        check_int32(bsum, f"{node.name} (bias gradient)")
        ctx.update_bias(node, bsum, g.e)
    if upd is not None and upd.weights:
        mw = ctx.round(m, c["wfit"]) if c["wfit"] else m
        xs = i64(ctx.kept(node.inputs[0])) - int(node.attr("x_zp", 0))
        if node.op == "QGemm":
            acc = mw.reshape(mw.shape[0], -1).T @ xs.reshape(xs.shape[0], -1)
        else:
            acc = conv_weight_grad(node, xs, mw, w.shape)
        check_int32(acc, f"{node.name} (weight gradient)")
        ctx.update_weights(node, acc, g.e + c["wfit"])
    return out

