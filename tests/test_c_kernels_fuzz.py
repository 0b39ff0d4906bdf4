"""Fuzzed shapes: every C kernel on random small shapes, strides, pads, dilations, groups,
broadcasts, ranks and zero points drawn (fixed seeds) within eq_kernels.h's documented
ranges, equal to the integer reference bit for bit (np.array_equal).

The parametrised grids (test_c_kernels*.py, test_int4.py) pick the cases a person thinks
of; this pass draws the ones nobody picked. Buffers are exactly the size the kernel may
touch, so under `make sanitize` (AddressSanitizer) any read or write past them fails.
Each failure names its case number and parameters; the seed is fixed, so it replays.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.codegen.carray import pack_s4
from edgeq.reference import run_node
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.conv import conv_accumulate
from edgeq.reference.softmax import softmax_params

from . import _cbuild as cb
from ._ckernels import mults_shifts, node, rand_i8
from .test_c_kernels import add_attrs

# per kernel (and per weight width / scratch path where a kernel has them); a longer run:
# EDGEQ_KERNEL_FUZZ_CASES=2000 make sanitize
CASES = int(os.environ.get("EDGEQ_KERNEL_FUZZ_CASES", "60"))


def zp(rng) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def clamp_range(rng) -> tuple[int, int]:
    if rng.random() < 0.5:
        return -128, 127
    lo = int(rng.integers(-128, 128))
    return lo, int(rng.integers(lo, 128))


def out_len(n: int, k: int, s: int, pb: int, pe: int, d: int) -> int:
    return (n + pb + pe - d * (k - 1) - 1) // s + 1


def windows_have_inside_taps(n: int, out: int, k: int, s: int, pb: int, d: int) -> bool:
    """Pools need at least one tap inside the input in every window (EQ_ERR_SHAPE else)."""
    return all(any(0 <= o * s - pb + t * d < n for t in range(k)) for o in range(out))


def spatial(rng, k_max: int = 4, pad_max: int = 3):
    """Random (in, kernel, stride, pad begin, pad end, dilation, out) along one axis."""
    while True:
        n, k = int(rng.integers(1, 11)), int(rng.integers(1, k_max + 1))
        s, d = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        pb, pe = (int(v) for v in rng.integers(0, pad_max + 1, 2))
        out = out_len(n, k, s, pb, pe, d)
        if out >= 1:
            return n, k, s, pb, pe, d, out


# ---- conv (s8, s4) ---------------------------------------------------------------------

def conv_case(rng, bits: int):
    n = int(rng.integers(1, 3))
    g = int(rng.integers(1, 4))
    cin_g, cout_g = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    if rng.random() < 0.25:  # depthwise, channel multiplier cout_g
        cin_g = 1
    if rng.random() < 0.25:  # the pointwise path: 1x1, stride 1, no padding
        h, w = (int(v) for v in rng.integers(1, 9, 2))
        ah, aw = (h, 1, 1, 0, 0, 1, h), (w, 1, 1, 0, 0, 1, w)
    else:
        ah = (1, 1, 1, 0, 0, 1, 1) if rng.random() < 0.15 else spatial(rng)  # 1-D: H = 1
        aw = spatial(rng)
    ci, co = g * cin_g, g * cout_g
    wmax = 7 if bits == 4 else 127
    x = rand_i8(rng, (n, ci, ah[0], aw[0]))
    wt = rand_i8(rng, (co, cin_g, ah[1], aw[1]), -wmax - (bits == 4), wmax)
    k_taps = cin_g * ah[1] * aw[1]
    bias = rng.integers(-300 * k_taps, 300 * k_taps, co).astype(np.int32) if rng.random() < 0.8 else None
    x_zp, y_zp = zp(rng), zp(rng)
    act = clamp_range(rng)
    nd = node("QConv", strides=[ah[2], aw[2]], pads=[ah[3], aw[3], ah[4], aw[4]],
              dilations=[ah[5], aw[5]], group=g, x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
    acc = conv_accumulate(nd, x, wt, bias, 2)
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=(0, 2, 3)))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.ConvParams, batch=n, in_c=ci, in_h=ah[0], in_w=aw[0], out_c=co, out_h=ah[6],
                out_w=aw[6], kernel_h=ah[1], kernel_w=aw[1], stride_h=ah[2], stride_w=aw[2],
                pad_top=ah[3], pad_left=aw[3], pad_bottom=ah[4], pad_right=aw[4],
                dilation_h=ah[5], dilation_w=aw[5], groups=g, x_zp=x_zp, y_zp=y_zp,
                act_min=act[0], act_max=act[1])
    return p, x, wt, bias, m, s, ref


def exact_scratch(fn: str, p) -> np.ndarray:
    """A scratch buffer of exactly the bytes the kernel asks for, misaligned by one."""
    size_fn = getattr(cb.library(), f"{fn}_scratch_size")
    size_fn.restype = cb.ctypes.c_size_t
    return np.zeros(size_fn(cb.ctypes.byref(p)) + 1, np.uint8)[1:]


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("path", ["direct", "im2col"])
def test_conv2d_fuzz(bits, path):
    rng = np.random.default_rng(7000 + bits * 10 + (path == "im2col"))
    fn = f"eq_conv2d_s{bits}"
    for case in range(CASES):
        p, x, wt, bias, m, s, ref = conv_case(rng, bits)
        w = np.ascontiguousarray(pack_s4(wt)) if bits == 4 else cb.i8(wt)
        scratch = exact_scratch(fn, p) if path == "im2col" else None
        y = np.zeros_like(ref)
        assert cb.call(fn, p, x, w, bias, m, s, scratch, y) == 0, (case, x.shape, wt.shape)
        assert np.array_equal(y, ref), (case, x.shape, wt.shape, {f: getattr(p, f) for f, _ in p._fields_})


# ---- fully connected (s8, s4) ----------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("path", ["direct", "dot"])
def test_fully_connected_fuzz(bits, path):
    rng = np.random.default_rng(7100 + bits * 10 + (path == "dot"))
    fn = f"eq_fully_connected_s{bits}"
    for case in range(CASES):
        n, k, co = int(rng.integers(1, 4)), int(rng.integers(1, 300)), int(rng.integers(1, 20))
        wmax = 7 if bits == 4 else 127
        x, wt = rand_i8(rng, (n, k)), rand_i8(rng, (co, k), -wmax - (bits == 4), wmax)
        bias = rng.integers(-5000, 5000, co).astype(np.int32) if rng.random() < 0.8 else None
        x_zp, y_zp, act = zp(rng), zp(rng), clamp_range(rng)
        nd = node("QGemm", x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
        acc = (x.astype(np.int64) - x_zp) @ wt.astype(np.int64).T + (0 if bias is None else bias)
        m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
        ref = run_node(nd, [x, wt, bias, m, s])
        p = cb.make(cb.FcParams, batch=n, in_features=k, out_features=co, x_zp=x_zp, y_zp=y_zp,
                    act_min=act[0], act_max=act[1])
        w = np.ascontiguousarray(pack_s4(wt)) if bits == 4 else cb.i8(wt)
        scratch = exact_scratch(fn, p) if path == "dot" else None
        y = np.zeros_like(ref)
        assert cb.call(fn, p, x, w, bias, m, s, scratch, y) == 0, case
        assert np.array_equal(y, ref), (case, n, k, co)


# ---- broadcast add / mul ---------------------------------------------------------------

def broadcast_shapes(rng):
    """(a shape, b shape): ranks 1-4, each axis of each operand either the output's or 1."""
    rank = int(rng.integers(1, 5))
    y = [int(v) for v in rng.integers(1, 6, rank)]
    shapes = []
    for _ in range(2):
        s = [d if rng.random() < 0.6 else 1 for d in y]
        drop = int(rng.integers(0, rank)) if rng.random() < 0.3 else 0  # a lower-rank operand
        shapes.append(tuple(s[drop:]) or (1,))
    return shapes


def dims4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + list(shape)


@pytest.mark.parametrize("op", ["QAdd", "QMul"])
def test_add_mul_fuzz(op):
    rng = np.random.default_rng(7200 + (op == "QMul"))
    for case in range(CASES):
        sa, sb = broadcast_shapes(rng)
        a, b = rand_i8(rng, sa), rand_i8(rng, sb)
        zps = (zp(rng), zp(rng), zp(rng))
        act = clamp_range(rng)
        if op == "QAdd":
            at = {**add_attrs(rng, zps), "act_min": act[0], "act_max": act[1]}
            params, fn = cb.AddParams, "eq_add_s8"
        else:
            ym, ysh = fp.quantize_multiplier(float(np.exp(rng.uniform(np.log(1e-5), np.log(1.0)))))
            at = dict(a_zp=zps[0], b_zp=zps[1], y_zp=zps[2], y_mult=ym, y_shift=ysh,
                      act_min=act[0], act_max=act[1])
            params, fn = cb.MulParams, "eq_mul_s8"
        ref = run_node(node(op, **at), [a, b])
        p = cb.make(params, a_dims=dims4(sa), b_dims=dims4(sb), y_dims=dims4(ref.shape), **at)
        y = np.zeros_like(ref)
        assert cb.call(fn, p, a, b, y) == 0, (case, sa, sb)
        assert np.array_equal(y, ref), (case, sa, sb)


# ---- pools -----------------------------------------------------------------------------

def pool_case(rng):
    while True:
        ah, aw = spatial(rng, k_max=5), spatial(rng, k_max=5)
        if all(windows_have_inside_taps(a[0], a[6], a[1], a[2], a[3], a[5]) for a in (ah, aw)):
            return int(rng.integers(1, 3)), int(rng.integers(1, 6)), ah, aw


@pytest.mark.parametrize("op", ["QMaxPool", "QAvgPool"])
def test_pool_fuzz(op):
    rng = np.random.default_rng(7300 + (op == "QAvgPool"))
    for case in range(CASES):
        n, c, ah, aw = pool_case(rng)
        x = rand_i8(rng, (n, c, ah[0], aw[0]))
        act = clamp_range(rng)
        at = dict(kernel=[ah[1], aw[1]], strides=[ah[2], aw[2]], pads=[ah[3], aw[3], ah[4], aw[4]],
                  dilations=[ah[5], aw[5]], act_min=act[0], act_max=act[1])
        include, x_zp = int(rng.integers(0, 2)), zp(rng)
        if op == "QAvgPool":
            recip, rshift = avgpool_recips(ah[1], aw[1])
            at.update(count_include_pad=include, x_zp=x_zp, recip=recip, rshift=rshift)
        ref = run_node(node(op, **at), [x])
        p = cb.make(cb.PoolParams, batch=n, channels=c, in_h=ah[0], in_w=aw[0], out_h=ah[6], out_w=aw[6],
                    kernel_h=ah[1], kernel_w=aw[1], stride_h=ah[2], stride_w=aw[2], pad_top=ah[3],
                    pad_left=aw[3], pad_bottom=ah[4], pad_right=aw[4], dilation_h=ah[5],
                    dilation_w=aw[5], count_include_pad=include if op == "QAvgPool" else 0,
                    x_zp=x_zp if op == "QAvgPool" else 0, act_min=act[0], act_max=act[1])
        y = np.zeros_like(ref)
        if op == "QMaxPool":
            rc = cb.call("eq_maxpool_s8", p, x, y)
        else:
            rc = cb.call("eq_avgpool_s8", p, x, cb.i32(recip), cb.i32(rshift), y)
        assert rc == 0, (case, x.shape, ah, aw)
        assert np.array_equal(y, ref), (case, x.shape, ah, aw)


# ---- softmax, LUT, PReLU, requant ------------------------------------------------------

def test_softmax_fuzz():
    rng = np.random.default_rng(7400)
    for case in range(CASES):
        outer, depth, inner = int(rng.integers(1, 4)), int(rng.integers(1, 300)), int(rng.integers(1, 4))
        x = rand_i8(rng, (outer, depth, inner))
        if rng.random() < 0.2:
            x[:] = np.int8(rng.integers(-128, 128))  # flat rows
        scale, beta = float(np.exp(rng.uniform(np.log(1e-4), np.log(4.0)))), float(rng.choice([1.0, 0.5, 2.0]))
        prm = softmax_params(scale, beta)
        ref = run_node(node("QSoftmax", axis=1, beta=beta, **prm), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.SoftmaxParams, outer=outer, depth=depth, inner=inner, **prm)
        assert cb.call("eq_softmax_s8", p, x, y) == 0, case
        assert np.array_equal(y, ref), (case, x.shape, scale, beta)


def test_lut_requant_fuzz():
    rng = np.random.default_rng(7500)
    for case in range(CASES):
        size = int(rng.integers(1, 2000))
        x, table = rand_i8(rng, size), rand_i8(rng, 256)
        y = np.zeros(size, np.int8)
        assert cb.call("eq_lut_s8", size, x, table, y) == 0
        assert np.array_equal(y, run_node(node("QLut", fn="fuzz"), [x, table])), case
        m, s = fp.quantize_multiplier(float(np.exp(rng.uniform(np.log(1e-4), np.log(1e6)))))
        at = dict(x_zp=zp(rng), y_zp=zp(rng), mult=m, shift=s)
        ref = run_node(node("QRequant", **at), [x])
        y = np.zeros_like(ref)
        assert cb.call("eq_requant_s8", cb.make(cb.RequantParams, size=size, **at), x, y) == 0
        assert np.array_equal(y, ref), (case, size, m, s)


def test_prelu_fuzz():
    rng = np.random.default_rng(7600)
    for case in range(CASES):
        shape = tuple(int(v) for v in rng.integers(1, 6, int(rng.integers(2, 5))))
        c = shape[1]
        nc = c if rng.random() < 0.7 else 1
        x = rand_i8(rng, shape)
        pm, ps = fp.quantize_multiplier(float(rng.uniform(0.1, 4)))
        slopes = rng.uniform(-3, 3, nc)
        slopes[rng.random(nc) < 0.1] = 0.0
        nm, ns = fp.quantize_multiplier_array(np.abs(slopes))
        sign = np.sign(slopes).astype(np.int32)
        x_zp, y_zp, act = zp(rng), zp(rng), clamp_range(rng)
        nd = node("QPrelu", x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
        ref = run_node(nd, [x, np.array([pm], np.int32), np.array([ps], np.int32), nm, ns, sign])
        p = cb.make(cb.PreluParams, batch=shape[0], channels=c, inner=int(np.prod(shape[2:])),
                    neg_channels=nc, x_zp=x_zp, y_zp=y_zp, pos_mult=pm, pos_shift=ps,
                    act_min=act[0], act_max=act[1])
        y = np.zeros_like(ref)
        assert cb.call("eq_prelu_s8", p, x, cb.i32(nm), cb.i32(ns), sign, y) == 0, case
        assert np.array_equal(y, ref), (case, shape, nc)


# ---- data movement ---------------------------------------------------------------------

def test_pad_transpose_fuzz():
    rng = np.random.default_rng(7700)
    for case in range(CASES):
        rank = int(rng.integers(1, cb.EQ_MAX_RANK + 1))
        shape = tuple(int(v) for v in rng.integers(1, 5, rank))
        x = rand_i8(rng, shape)
        pads = [int(v) for v in rng.integers(0, 4, 2 * rank)]
        value = int(rng.integers(-128, 128))
        ref = run_node(node("QPad", pads=pads, value=value), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.PadParams, rank=rank, in_dims=list(shape), pad_begin=pads[:rank],
                    pad_end=pads[rank:], value=value)
        assert cb.call("eq_pad_s8", p, x, y) == 0 and np.array_equal(y, ref), (case, shape, pads)
        perm = [int(v) for v in rng.permutation(rank)]
        ref = run_node(node("QTranspose", perm=perm), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.TransposeParams, rank=rank, in_dims=list(shape), perm=perm)
        assert cb.call("eq_transpose_s8", p, x, y) == 0 and np.array_equal(y, ref), (case, shape, perm)


def test_concat_reshape_fuzz():
    rng = np.random.default_rng(7800)
    for case in range(CASES):
        rank = int(rng.integers(1, 5))
        base = [int(v) for v in rng.integers(1, 5, rank)]
        axis = int(rng.integers(0, rank))
        shapes = []
        for _ in range(int(rng.integers(1, 5))):
            s = list(base)
            s[axis] = int(rng.integers(1, 5))
            shapes.append(tuple(s))
        xs = [rand_i8(rng, s) for s in shapes]
        ref = run_node(node("QConcat", axis=axis), xs)
        inner = int(np.prod(base[axis + 1:], dtype=np.int64))
        chunk = cb.i32([s[axis] * inner for s in shapes])
        ptrs = (cb.ctypes.c_void_p * len(xs))(*[x.ctypes.data for x in xs])
        y = np.zeros_like(ref)
        outer = int(np.prod(base[:axis], dtype=np.int64))
        assert cb.call("eq_concat_s8", len(xs), ptrs, chunk, outer, y) == 0, case
        assert np.array_equal(y, ref), (case, shapes, axis)
        flat = np.zeros(ref.size, np.int8)
        assert cb.call("eq_reshape_s8", ref.size, ref, flat) == 0 and np.array_equal(flat, ref.ravel())
