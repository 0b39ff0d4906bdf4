"""The C runtime equals the integer reference bit for bit (np.array_equal, never a tolerance).

Every kernel in runtime_c/src is built once per session into a host shared library
(tests/_cbuild.py) and run on a parametrised grid: odd channel counts, stride 2, asymmetric
padding, dilation, groups and depthwise with a channel multiplier, zero points at -128 and
127, multipliers at 2^30 and 2^31 - 1, shifts from -31 up to the largest the value range
allows. Random data comes from fixed seeds.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.reference import run_node
from edgeq.reference.conv import conv_accumulate
from edgeq.ir import Node

from . import _cbuild as cb
from ._ckernels import M_EXTREMES, mults_shifts, node, rand_i8


# ---- fixed-point primitives ------------------------------------------------------------

def _edge_i32(rng, n):
    edges = np.array([fp.INT32_MIN, fp.INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30,
                      fp.INT32_MAX - 1, fp.INT32_MAX], dtype=np.int64)
    return np.concatenate([edges, rng.integers(fp.INT32_MIN, fp.INT32_MAX, n, endpoint=True)])


def test_primitives_srdhm_rdbp():
    rng = np.random.default_rng(1)
    a = _edge_i32(rng, 20000)
    b = np.concatenate([a[:9][::-1], rng.integers(fp.INT32_MIN, fp.INT32_MAX, a.size - 9)])
    # every pair of edge values too
    ea, eb = np.meshgrid(a[:9], a[:9])
    a, b = np.concatenate([a, ea.ravel()]), np.concatenate([b, eb.ravel()])
    y = np.zeros(a.size, np.int32)
    cb.call("shim_srdhm", a.size, cb.i32(a), cb.i32(b), y)
    assert np.array_equal(y, fp.saturating_rounding_doubling_high_mul(a, b))
    e = rng.integers(0, 32, a.size)
    e[:32] = np.arange(32)
    cb.call("shim_rdbp", a.size, cb.i32(a), cb.i32(e), y)
    assert np.array_equal(y, fp.rounding_divide_by_pot(a, e))


def test_primitives_mbqm_all_shifts():
    rng = np.random.default_rng(2)
    shifts = np.repeat(np.arange(-31, 31), 400)
    m = rng.integers(1 << 30, 1 << 31, shifts.size)
    m[::3] = M_EXTREMES[0]
    m[1::3] = M_EXTREMES[1]
    lim = (1 << (31 - np.maximum(shifts, 0))) - 1  # x << shift must fit int32
    x = (rng.integers(-(1 << 31), 1 << 31, shifts.size) % (2 * lim + 1)) - lim
    x[::7] = lim[::7]
    x[1::7] = -lim[1::7]
    y = np.zeros(x.size, np.int32)
    cb.call("shim_mbqm", x.size, cb.i32(x), cb.i32(m), cb.i32(shifts), y)
    assert np.array_equal(y, fp.multiply_by_quantized_multiplier(x, m, shifts))


def test_primitives_round_half_away_div():
    counts, nums, rec, rsh = [], [], [], []
    for count in list(range(1, 50)) + [64, 81, 100, 121, 144, 196, 255, 256, 49 * 49]:
        r, s = fp.exact_reciprocal(count, 128 * count + count // 2)
        n = np.arange(-128 * count, 128 * count + 1)
        nums.append(n)
        counts.append(np.full(n.size, count))
        rec.append(np.full(n.size, r))
        rsh.append(np.full(n.size, s))
    n, c, r, s = (np.concatenate(v) for v in (nums, counts, rec, rsh))
    y = np.zeros(n.size, np.int32)
    cb.call("shim_rhad", n.size, cb.i32(n), cb.i32(c), cb.i32(r), cb.i32(s), y)
    expect = fp.round_half_away_div(n, c, r, s)
    assert np.array_equal(y, expect)
    # and it is TFLite's (n +- c/2) / c with C truncating division
    mag = (np.abs(n) + c // 2) // c
    assert np.array_equal(expect, np.where(n >= 0, mag, -mag))


def test_primitives_softmax_math():
    rng = np.random.default_rng(3)
    y = lambda n: np.zeros(n, np.int32)  # noqa: E731
    a = np.concatenate([[0, -1, fp.INT32_MIN, -(1 << 24), -(31 << 26)],
                        rng.integers(fp.INT32_MIN, 1, 20000)])
    for which, x, ref in (
            (0, a, fp.exp_on_negative_values),
            (3, np.concatenate([[-(1 << 29), -1], rng.integers(-(1 << 29), 0, 5000)]),
             fp.exp_on_interval_between_negative_one_quarter_and_0_excl),
            (1, np.concatenate([[0, 1, fp.INT32_MAX], rng.integers(0, 1 << 31, 20000)]),
             fp.one_over_one_plus_x_for_x_in_0_1),
            (2, _edge_i32(rng, 5000), fp.count_leading_zeros32)):
        out = y(x.size)
        cb.call("shim_unary", which, x.size, cb.i32(x), out)
        assert np.array_equal(out, ref(x)), which
    s = np.concatenate([[1, 1 << 19, fp.INT32_MAX], rng.integers(1 << 19, 1 << 31, 5000)])
    out = y(2 * s.size)
    cb.call("shim_unary", 4, s.size, cb.i32(s), out)
    r, bits = fp.get_reciprocal(s, 12)
    assert np.array_equal(out[:s.size], r) and np.array_equal(out[s.size:], bits)
    ab = _edge_i32(rng, 6000)
    ab = np.concatenate([ab, ab[::-1]])
    out = y(ab.size // 2)
    cb.call("shim_unary", 5, ab.size // 2, cb.i32(ab), out)
    assert np.array_equal(out, fp.rounding_half_sum(ab[:ab.size // 2], ab[ab.size // 2:]))
    for e in range(-31, 31):
        x = _edge_i32(rng, 300)
        out = y(x.size)
        cb.call("shim_srmpot", x.size, cb.i32(x), cb.i32(np.full(x.size, e)), out)
        assert np.array_equal(out, fp.saturating_rounding_multiply_by_pot(x, e)), e


def scratch_for(fn: str, params, co: int, w_shape) -> np.ndarray:
    """A scratch buffer of the size the C companion asks for, deliberately misaligned by
    one byte (the kernel aligns it), after checking the Python mirror gives the same size."""
    from edgeq.codegen import scratch_size
    from edgeq.ir import Graph
    size_fn = getattr(cb.library(), f"{fn}_scratch_size")
    size_fn.restype = cb.ctypes.c_size_t
    size = size_fn(cb.ctypes.byref(params))
    g = Graph()
    g.add_const("w", np.zeros(w_shape, np.int8))
    op = "QConv" if "conv" in fn else "QGemm"
    assert scratch_size(Node(op, "n", ["x", "w"], ["y"]), g) == size > 0
    return np.zeros(size + 1, np.uint8)[1:]


# ---- conv ------------------------------------------------------------------------------

# (N, Ci, H, W, Co, kH, kW, strides, pads (t, l, b, r), dilations, group)
CONV_CASES = [
    (1, 3, 8, 8, 5, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),        # pointwise, odd channels
    (2, 5, 9, 7, 7, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 1),        # stride 2, asymmetric pads
    (1, 4, 11, 10, 3, 3, 2, (1, 2), (2, 1, 2, 0), (2, 3), 1),      # dilation, rect kernel
    (1, 7, 9, 9, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 7),        # depthwise
    (3, 3, 8, 6, 6, 3, 3, (2, 1), (0, 1, 1, 0), (1, 1), 3),        # depthwise, multiplier 2
    (1, 6, 7, 7, 9, 2, 3, (1, 1), (0, 2, 1, 0), (2, 1), 3),        # grouped
    (1, 2, 3, 4, 3, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1),        # kernel wider than input
    (1, 16, 5, 5, 8, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),       # deeper K
    (2, 1, 6, 6, 4, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),        # single input channel
    (2, 6, 3, 5, 6, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 2),        # grouped pointwise, odd H*W and Co/g
]


@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128), (5, -3)])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(case, zps):
    n, ci, h, w, co, kh, kw, st, pads, dil, g = case
    x_zp, y_zp = zps
    rng = np.random.default_rng(abs(hash((case, zps))) % 2**32)
    x = rand_i8(rng, (n, ci, h, w))
    wt = rand_i8(rng, (co, ci // g, kh, kw), -127, 127)
    k_taps = ci // g * kh * kw
    bias = rng.integers(-8000 * k_taps, 8000 * k_taps, co).astype(np.int32)
    act = (max(-128, y_zp), 127) if zps == (5, -3) else (-128, 127)  # a fused Relu once
    nd = node("QConv", strides=list(st), pads=list(pads), dilations=list(dil), group=g,
              x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
    acc = conv_accumulate(nd, x, wt, bias, 2)
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=(0, 2, 3)))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.ConvParams, batch=n, in_c=ci, in_h=h, in_w=w, out_c=co, out_h=ref.shape[2],
                out_w=ref.shape[3], kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1],
                pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                dilation_h=dil[0], dilation_w=dil[1], groups=g, x_zp=x_zp, y_zp=y_zp,
                act_min=act[0], act_max=act[1])
    for scratch in (None, scratch_for("eq_conv2d_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_conv2d_s8", p, x, cb.i8(wt), bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)


def test_conv2d_no_bias_and_bad_shapes():
    rng = np.random.default_rng(7)
    x = rand_i8(rng, (1, 4, 5, 5))
    wt = rand_i8(rng, (2, 4, 3, 3), -127, 127)
    m, s = fp.quantize_multiplier_array(np.full(2, 0.003))
    nd = node("QConv", strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
              x_zp=-7, y_zp=3, act_min=-128, act_max=127)
    ref = run_node(nd, [x, wt, None, m, s])
    kw = dict(batch=1, in_c=4, in_h=5, in_w=5, out_c=2, out_h=5, out_w=5, kernel_h=3,
              kernel_w=3, stride_h=1, stride_w=1, pad_top=1, pad_left=1, pad_bottom=1,
              pad_right=1, dilation_h=1, dilation_w=1, groups=1, x_zp=-7, y_zp=3,
              act_min=-128, act_max=127)
    y = np.zeros_like(ref)
    assert cb.call("eq_conv2d_s8", cb.make(cb.ConvParams, **kw), x, cb.i8(wt), None, m, s, None, y) == 0
    assert np.array_equal(y, ref)
    untouched = np.full_like(ref, 99)
    for bad, code in (({"out_h": 4}, 2), ({"groups": 3}, 2), ({"x_zp": 128}, 1),
                      ({"act_min": 10, "act_max": 5}, 1), ({"stride_h": 0}, 2)):
        assert cb.call("eq_conv2d_s8", cb.make(cb.ConvParams, **{**kw, **bad}), x, cb.i8(wt),
                       None, m, s, None, untouched) == code, bad
    assert (untouched == 99).all()


# ---- fully connected ---------------------------------------------------------------------

def fc_case(seed: int, shape, zps, wmax: int):
    """A random fully connected case with weights in [-wmax, wmax]: (x, wt, bias, m, s,
    the integer reference's output, the C parameter struct)."""
    n, k, co = shape
    rng = np.random.default_rng(seed)
    x = rand_i8(rng, (n, k))
    wt = rand_i8(rng, (co, k), -wmax, wmax)
    bias = rng.integers(-5000, 5000, co).astype(np.int32)
    nd = node("QGemm", x_zp=zps[0], y_zp=zps[1], act_min=-128, act_max=127)
    acc = (x.astype(np.int64) - zps[0]) @ wt.astype(np.int64).T + bias
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.FcParams, batch=n, in_features=k, out_features=co, x_zp=zps[0], y_zp=zps[1],
                act_min=-128, act_max=127)
    return x, wt, bias, m, s, ref, p


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 10, 7), (3, 33, 5), (2, 257, 11)])
@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128)])
def test_fully_connected(shape, zps):
    _, k, co = shape
    x, wt, bias, m, s, ref, p = fc_case(1000 + k * 31 + co + zps[0], shape, zps, 127)
    for scratch in (None, scratch_for("eq_fully_connected_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_fully_connected_s8", p, x, cb.i8(wt), bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)


# ---- add / mul -------------------------------------------------------------------------

BCAST_CASES = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((1, 5, 3, 3), (1, 5, 1, 1)),
    ((1, 1, 4, 1), (2, 3, 1, 7)),
    ((3, 7), (7,)),
    ((1, 4, 2, 2), (1,)),
]


def _dims4(shape):
    return [1] * (4 - len(shape)) + list(shape)


def add_attrs(rng, zps):
    sa, sb, sy = np.exp(rng.uniform(np.log(0.005), np.log(0.5), 3))
    twice = 2 * max(sa, sb)
    am, ash = fp.quantize_multiplier(sa / twice)
    bm, bsh = fp.quantize_multiplier(sb / twice)
    ym, ysh = fp.quantize_multiplier(twice / ((1 << 20) * sy))
    return dict(a_zp=zps[0], b_zp=zps[1], y_zp=zps[2], left_shift=20, a_mult=am, a_shift=ash,
                b_mult=bm, b_shift=bsh, y_mult=ym, y_shift=ysh, act_min=-128, act_max=127)


@pytest.mark.parametrize("zps", [(0, 0, 0), (-128, 127, -128), (127, -128, 127), (3, -9, 20)])
@pytest.mark.parametrize("shapes", BCAST_CASES)
def test_add(shapes, zps):
    rng = np.random.default_rng(sum(map(len, shapes)) * 7 + zps[0] + 300)
    a, b = rand_i8(rng, shapes[0]), rand_i8(rng, shapes[1])
    at = add_attrs(rng, zps)
    if zps == (3, -9, 20):
        at["act_min"] = 20  # fused Relu
    ref = run_node(node("QAdd", **at), [a, b])
    for x1, x2, s1, s2 in ((a, b, shapes[0], shapes[1]),):
        p = cb.make(cb.AddParams, a_dims=_dims4(s1), b_dims=_dims4(s2), y_dims=_dims4(ref.shape), **at)
        y = np.zeros_like(ref)
        assert cb.call("eq_add_s8", p, x1, x2, y) == 0
        assert np.array_equal(y, ref)


def test_add_multiplier_extremes():
    rng = np.random.default_rng(11)
    a, b = rand_i8(rng, (1, 3, 5, 5)), rand_i8(rng, (1, 3, 5, 5))
    for am, bm, ym, ysh in ((1 << 30, (1 << 31) - 1, (1 << 31) - 1, -31), (M_EXTREMES[1], 1 << 30, 1 << 30, -12),
                            (M_EXTREMES[1], M_EXTREMES[1], M_EXTREMES[1], 2)):
        at = dict(a_zp=-128, b_zp=127, y_zp=0, left_shift=20, a_mult=am, a_shift=0, b_mult=bm,
                  b_shift=-1, y_mult=ym, y_shift=ysh, act_min=-128, act_max=127)
        ref = run_node(node("QAdd", **at), [a, b])
        p = cb.make(cb.AddParams, a_dims=[1, 3, 5, 5], b_dims=[1, 3, 5, 5], y_dims=[1, 3, 5, 5], **at)
        y = np.zeros_like(ref)
        assert cb.call("eq_add_s8", p, a, b, y) == 0
        assert np.array_equal(y, ref)


@pytest.mark.parametrize("zps", [(0, 0, 0), (-128, 127, -128), (127, -128, 127)])
@pytest.mark.parametrize("shapes", BCAST_CASES)
def test_mul(shapes, zps):
    rng = np.random.default_rng(sum(map(len, shapes)) * 13 + zps[0] + 500)
    a, b = rand_i8(rng, shapes[0]), rand_i8(rng, shapes[1])
    for ym, ysh in ((*fp.quantize_multiplier(float(rng.uniform(1e-4, 1e-2))),), (M_EXTREMES[0], -31),
                    (M_EXTREMES[1], 15), (M_EXTREMES[1], -8)):
        at = dict(a_zp=zps[0], b_zp=zps[1], y_zp=zps[2], y_mult=ym, y_shift=ysh,
                  act_min=-128, act_max=127)
        ref = run_node(node("QMul", **at), [a, b])
        p = cb.make(cb.MulParams, a_dims=_dims4(shapes[0]), b_dims=_dims4(shapes[1]),
                    y_dims=_dims4(ref.shape), **at)
        y = np.zeros_like(ref)
        assert cb.call("eq_mul_s8", p, a, b, y) == 0
        assert np.array_equal(y, ref)


def test_add_bad_broadcast():
    a = np.zeros((1, 3, 4, 4), np.int8)
    y = np.full((1, 3, 4, 4), 5, np.int8)
    at = dict(a_zp=0, b_zp=0, y_zp=0, left_shift=20, a_mult=1 << 30, a_shift=0, b_mult=1 << 30,
              b_shift=0, y_mult=1 << 30, y_shift=-19, act_min=-128, act_max=127)
    p = cb.make(cb.AddParams, a_dims=[1, 3, 4, 4], b_dims=[1, 2, 4, 4], y_dims=[1, 3, 4, 4], **at)
    assert cb.call("eq_add_s8", p, a, a, y) == 2 and (y == 5).all()


# ---- lut / prelu / requant -------------------------------------------------------------

def test_lut():
    rng = np.random.default_rng(21)
    table = rand_i8(rng, 256)
    x = np.arange(-128, 128, dtype=np.int8).repeat(3)
    ref = run_node(node("QLut", fn="test"), [x, table])
    y = np.zeros_like(ref)
    assert cb.call("eq_lut_s8", x.size, x, table, y) == 0
    assert np.array_equal(y, ref) and np.array_equal(ref, table[x.astype(int) + 128])


@pytest.mark.parametrize("shape,per_channel", [((2, 5, 3, 3), True), ((1, 7, 4), True),
                                               ((3, 6), False), ((1, 3, 2, 2), False)])
@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128)])
def test_prelu(shape, per_channel, zps):
    rng = np.random.default_rng(len(shape) * 100 + zps[0] + int(per_channel))
    c = shape[1]
    nc = c if per_channel else 1
    x = rand_i8(rng, shape)
    pm, ps = fp.quantize_multiplier(float(rng.uniform(0.3, 3)))
    slopes = rng.uniform(-2, 2, nc)
    slopes[0] = 0.0
    nm, ns = fp.quantize_multiplier_array(np.abs(slopes) * 0.8)
    if nc > 2:
        nm[1], ns[1] = M_EXTREMES[1], 23
        nm[2], ns[2] = M_EXTREMES[0], -31
    sign = np.sign(slopes).astype(np.int32)
    nd = node("QPrelu", x_zp=zps[0], y_zp=zps[1])
    arrays = [np.array([pm], np.int32), np.array([ps], np.int32), nm, ns, sign]
    ref = run_node(nd, [x, *arrays])
    inner = int(np.prod(shape[2:], dtype=np.int64))
    p = cb.make(cb.PreluParams, batch=shape[0], channels=c, inner=inner, neg_channels=nc,
                x_zp=zps[0], y_zp=zps[1], pos_mult=pm, pos_shift=ps, act_min=-128, act_max=127)
    y = np.zeros_like(ref)
    assert cb.call("eq_prelu_s8", p, x, cb.i32(nm), cb.i32(ns), cb.i32(sign), y) == 0
    assert np.array_equal(y, ref)


@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128), (-3, 44)])
def test_requant(zps):
    rng = np.random.default_rng(1040 + zps[0])
    x = np.arange(-128, 128, dtype=np.int8)
    for m, s in [fp.quantize_multiplier(r) for r in (0.001, 0.37, 0.5, 1.0, 1.9, 7.3)] + \
                [(M_EXTREMES[0], -31), (M_EXTREMES[1], -31), (M_EXTREMES[1], 23), (M_EXTREMES[0], 23),
                 (int(rng.integers(1 << 30, 1 << 31)), 0)]:
        at = dict(x_zp=zps[0], y_zp=zps[1], mult=m, shift=s)
        ref = run_node(node("QRequant", **at), [x])
        y = np.zeros_like(ref)
        assert cb.call("eq_requant_s8", cb.make(cb.RequantParams, size=x.size, **at), x, y) == 0
        assert np.array_equal(y, ref), (m, s)
