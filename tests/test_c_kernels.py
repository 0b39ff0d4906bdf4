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
from edgeq.intref import load_all, run_node
from edgeq.intref.avgpool import avgpool_recips
from edgeq.intref.conv import conv_accumulate
from edgeq.intref.softmax import softmax_params
from edgeq.ir import Node

from . import _cbuild as cb

M_EXTREMES = (1 << 30, (1 << 31) - 1)
load_all()  # run_node loads the registry only when it is empty


def node(op, **attrs):
    return Node(op, f"t_{op}", [], [], attrs)


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def max_left_shift(acc) -> np.ndarray:
    """Largest shift per value for which acc << shift still fits int32 (MBQM's range)."""
    mag = np.abs(np.asarray(acc, dtype=np.int64))
    return 30 - np.array([int(v).bit_length() for v in mag.ravel()]).reshape(mag.shape) + 1


def mults_shifts(rng, n, acc_max=None):
    """Per-channel (mult, shift): a mix of realistic multipliers and the extremes."""
    real = np.exp(rng.uniform(np.log(1e-4), np.log(2e-2), size=n))
    if acc_max is not None:  # spread the outputs over the int8 range
        real = rng.uniform(0.3, 1.5, size=n) * 128 / np.maximum(acc_max, 1)
    m, s = fp.quantize_multiplier_array(real)
    m, s = m.astype(np.int64), s.astype(np.int64)
    for c in range(n):
        kind = c % 5
        if kind == 1:
            m[c] = M_EXTREMES[c % 2]
        elif kind == 2:
            m[c], s[c] = M_EXTREMES[(c // 5) % 2], -31
        elif kind == 3:
            m[c], s[c] = M_EXTREMES[(c // 5 + 1) % 2], 30
    if acc_max is not None:  # keep MBQM's left shift inside int32, as the compiler proves
        s = np.minimum(s, max_left_shift(acc_max))
    return m.astype(np.int32), s.astype(np.int32)


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
    from edgeq.runtime_c.scratch import scratch_size
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


# ---- pooling ---------------------------------------------------------------------------

# (N, C, H, W, kernel, strides, pads, dilations)
POOL_CASES = [
    (1, 3, 8, 8, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
    (2, 5, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 4, 9, 6, (3, 2), (1, 2), (1, 0, 2, 1), (1, 1)),      # asymmetric pads
    (1, 3, 10, 10, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),    # dilation
    (2, 7, 5, 5, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1)),      # global
    (1, 2, 6, 6, (4, 4), (3, 3), (2, 1, 1, 2), (1, 1)),      # big pads: few inside taps
]


def _pool_params(case, ref, **kw):
    n, c, h, w, k, st, pads, dil = case
    return cb.make(cb.PoolParams, batch=n, channels=c, in_h=h, in_w=w, out_h=ref.shape[2],
                   out_w=ref.shape[3], kernel_h=k[0], kernel_w=k[1], stride_h=st[0],
                   stride_w=st[1], pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2],
                   pad_right=pads[3], dilation_h=dil[0], dilation_w=dil[1], **kw)


@pytest.mark.parametrize("act", [(-128, 127), (-5, 60)])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool(case, act):
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rand_i8(rng, case[:4])
    nd = node("QMaxPool", kernel=list(case[4]), strides=list(case[5]), pads=list(case[6]),
              dilations=list(case[7]), act_min=act[0], act_max=act[1])
    ref = run_node(nd, [x])
    y = np.zeros_like(ref)
    p = _pool_params(case, ref, count_include_pad=0, x_zp=0, act_min=act[0], act_max=act[1])
    assert cb.call("eq_maxpool_s8", p, x, y) == 0
    assert np.array_equal(y, ref)


@pytest.mark.parametrize("include_pad,x_zp", [(0, 0), (1, -128), (1, 127), (1, 9)])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool(case, include_pad, x_zp):
    rng = np.random.default_rng(hash(case) % 2**32 + include_pad)
    x = rand_i8(rng, case[:4])
    if case[2] == 10:
        x[:] = np.int8(-128)  # the most negative sums
    k = case[4]
    recip, rshift = avgpool_recips(*k)
    nd = node("QAvgPool", kernel=list(k), strides=list(case[5]), pads=list(case[6]),
              dilations=list(case[7]), count_include_pad=include_pad, x_zp=x_zp,
              recip=recip, rshift=rshift, act_min=-128, act_max=127)
    ref = run_node(nd, [x])
    y = np.zeros_like(ref)
    p = _pool_params(case, ref, count_include_pad=include_pad, x_zp=x_zp, act_min=-128, act_max=127)
    assert cb.call("eq_avgpool_s8", p, x, cb.i32(recip), cb.i32(rshift), y) == 0
    assert np.array_equal(y, ref)


def test_pool_empty_window_rejected():
    x = np.zeros((1, 1, 2, 2), np.int8)
    y = np.full((1, 1, 3, 3), 7, np.int8)
    case = (1, 1, 2, 2, (1, 1), (1, 1), (1, 1, 0, 0), (1, 1))  # first row/col all padding
    ref = np.zeros((1, 1, 3, 3), np.int8)
    p = _pool_params(case, ref, count_include_pad=0, x_zp=0, act_min=-128, act_max=127)
    assert cb.call("eq_maxpool_s8", p, x, y) == 2 and (y == 7).all()


# ---- softmax ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale,beta", [(1 / 256, 1.0), (0.05, 1.0), (0.1, 1.0), (0.5, 1.0),
                                        (2.0, 1.0), (0.02, 3.0), (1e-5, 1.0)])
@pytest.mark.parametrize("shape,axis", [((4, 10), -1), ((2, 1), -1), ((1, 6, 3, 2), 1),
                                        ((3, 600), -1), ((1, 1001), -1)])
def test_softmax(scale, beta, shape, axis):
    rng = np.random.default_rng(int(scale * 1e6) + shape[-1])
    x = rand_i8(rng, shape)
    if shape[-1] > 500:
        x[0] = np.int8(100)  # a flat row: sums >= 2^28, the exponent > 31 branch
        x[0, 0] = 101
    prm = softmax_params(scale, beta)
    ref = run_node(node("QSoftmax", axis=axis, beta=beta, **prm), [x])
    ax = axis % len(shape)
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    inner = int(np.prod(shape[ax + 1:], dtype=np.int64))
    y = np.zeros_like(ref)
    p = cb.make(cb.SoftmaxParams, outer=outer, depth=shape[ax], inner=inner, **prm)
    assert cb.call("eq_softmax_s8", p, x, y) == 0
    assert np.array_equal(y, ref)


# ---- data movement ---------------------------------------------------------------------

@pytest.mark.parametrize("shapes,axis", [
    ([(1, 3, 4, 4), (1, 5, 4, 4), (1, 1, 4, 4)], 1),
    ([(2, 3), (1, 3)], 0),
    ([(2, 3, 2, 5), (2, 3, 2, 1)], 3),
    ([(2, 7)], 1),
    ([(1, 2, 3), (1, 2, 3), (1, 2, 3)], -1),
])
def test_concat(shapes, axis):
    rng = np.random.default_rng(len(shapes) * 10 + axis)
    xs = [rand_i8(rng, s) for s in shapes]
    ref = run_node(node("QConcat", axis=axis), xs)
    ax = axis % len(shapes[0])
    outer = int(np.prod(shapes[0][:ax], dtype=np.int64))
    inner = int(np.prod(shapes[0][ax + 1:], dtype=np.int64))
    chunk = cb.i32([s[ax] * inner for s in shapes])
    ptrs = (cb.ctypes.c_void_p * len(xs))(*[x.ctypes.data for x in xs])
    y = np.zeros_like(ref)
    assert cb.call("eq_concat_s8", len(xs), ptrs, chunk, outer, y) == 0
    assert np.array_equal(y, ref)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (1, 3, 4, 5), (2, 3, 1, 4, 2), (2, 1, 3, 2, 2, 3)])
def test_transpose(shape):
    rng = np.random.default_rng(len(shape))
    x = rand_i8(rng, shape)
    perms = [list(rng.permutation(len(shape))) for _ in range(4)] + [list(range(len(shape)))]
    if len(shape) == 4:
        perms.append([0, 2, 3, 1])  # NCHW -> NHWC
    for perm in perms:
        ref = run_node(node("QTranspose", perm=perm), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.TransposeParams, rank=len(shape), in_dims=list(shape), perm=perm)
        assert cb.call("eq_transpose_s8", p, x, y) == 0
        assert np.array_equal(y, ref), perm


@pytest.mark.parametrize("shape", [(5,), (2, 3), (1, 3, 4, 5), (2, 1, 3, 2, 2)])
@pytest.mark.parametrize("value", [-128, 127, 0])
def test_pad(shape, value):
    rng = np.random.default_rng(len(shape) + value + 128)
    x = rand_i8(rng, shape)
    r = len(shape)
    for trial in range(4):
        pads = list(rng.integers(0, 3, 2 * r)) if trial else [0] * (2 * r)
        ref = run_node(node("QPad", pads=pads, value=value), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.PadParams, rank=r, in_dims=list(shape), pad_begin=pads[:r],
                    pad_end=pads[r:], value=value)
        assert cb.call("eq_pad_s8", p, x, y) == 0
        assert np.array_equal(y, ref), pads


def test_reshape_copy():
    x = np.arange(-60, 60, dtype=np.int8)
    y = np.zeros_like(x)
    assert cb.call("eq_reshape_s8", x.size, x, y) == 0 and np.array_equal(x, y)
    ref = run_node(node("QReshape", shape=[2, 0, -1]), [x.reshape(3, 4, 10)])
    assert ref.shape == (2, 4, 15) and np.array_equal(ref.ravel(), x)


# ---- portability and the integer-only rule -----------------------------------------------

ARM_CPUS = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


@pytest.mark.parametrize("cpu", ARM_CPUS + ["cortex-m0"])
def test_arm_cross_compile_clean(cpu, tmp_path):
    """Every runtime source builds warning-free for each Cortex-M, and the objects need no
    symbol from outside the runtime but memset/memcpy (which GCC may emit for any
    freestanding code) and, on the M0, the 64-bit multiply helper: no other libc, no
    soft-float helpers (__aeabi_f*/d*), and on the M0, which has no divide instruction,
    no division helpers (__aeabi_idiv...)."""
    import shutil
    import subprocess
    gcc, nm = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-nm")
    if gcc is None or nm is None:
        pytest.skip("arm-none-eabi-gcc is missing")
    srcs = [str(s) for s in sorted(cb.SRC.glob("*.c"))]
    subprocess.run([gcc, f"-mcpu={cpu}", "-mthumb", "-std=c99", "-Wall", "-Wextra", "-Werror",
                    "-O2", f"-I{cb.INCLUDE}", "-c", *srcs], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=120)
    objs = sorted(str(p) for p in tmp_path.glob("*.o"))
    assert len(objs) == len(srcs)
    undefined = subprocess.run([nm, "-u", *objs], capture_output=True, text=True, check=True).stdout
    names = {ln.split()[-1] for ln in undefined.splitlines() if ln.strip() and not ln.endswith(":")}
    allowed = {"memset", "memcpy", "memmove", "__aeabi_lmul", "__aeabi_memset", "__aeabi_memcpy"}
    assert names <= allowed, names - allowed


def _strip_c(text: str) -> str:
    """C source without comments, string and char literals (so a '/' in a comment or an
    include path does not count)."""
    import re
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', " ", text,
                  flags=re.S)


def test_runtime_is_integer_only():
    import re
    banned = {
        "float/double": r"\b(float|double|long\s+double)\b",
        "heap": r"\b(malloc|calloc|realloc|free|alloca)\b",
        "division": r"/",
        "modulo": r"%",
        "libc include": r"#\s*include\s*<(?!stdint\.h|stddef\.h|arm_acle\.h)",
    }
    files = sorted(cb.SRC.glob("*.[ch]")) + sorted(cb.INCLUDE.glob("*.h"))
    assert len(files) > 10
    for f in files:
        code = _strip_c(f.read_text())
        for what, pattern in banned.items():
            m = re.search(pattern, code)
            assert m is None, f"{f.name}: {what}: ...{code[max(0, m.start() - 40):m.end() + 20]}..."


def test_every_header_kernel_is_defined_and_mirrored():
    """Each eq_<op>_s8 declared in eq_kernels.h has its source file, a _scratch_size
    companion, and an entry in edgeq.runtime_c.KERNELS / scratch.scratch_size."""
    import re
    from edgeq.runtime_c import KERNELS, KERNELS_S4
    from edgeq.runtime_c.scratch import scratch_size
    header = _strip_c((cb.INCLUDE / "eq_kernels.h").read_text())
    declared = set(re.findall(r"eq_status\s+(eq_\w+_s[48])\s*\(", header))
    assert declared == {f"eq_{n}_s8" for n in ("conv2d", "fully_connected", "add", "mul", "lut",
                                              "prelu", "maxpool", "avgpool", "softmax", "requant",
                                              "concat", "reshape", "transpose", "pad")} | {
        "eq_conv2d_s4", "eq_fully_connected_s4"}  # int4 weights, packed two per byte
    for fn in declared:
        assert (cb.SRC / f"{fn}.c").is_file(), fn
        assert re.search(rf"size_t\s+{fn}_scratch_size\s*\(", header), fn
        getattr(cb.library(), fn)
        getattr(cb.library(), f"{fn}_scratch_size")
    assert set(v for v in KERNELS.values() if v) <= declared
    assert set(KERNELS_S4.values()) <= declared and set(KERNELS_S4) <= set(KERNELS)
    for op in KERNELS:
        if op not in ("QConv", "QGemm"):
            assert scratch_size(node(op)) == 0
