"""The integer reference kernels (edgeq/intref) against independent formulations:

- slow, loop-for-loop integer versions written here from docs/semantics.md (no shared code
  with the kernels beyond the fixed-point primitives);
- hand-computed cases and float sanity bounds (within an LSB of the real-valued op);
- TFLite itself: one-op int8 models run by LiteRT's reference kernels (BUILTIN_REF, the
  same bytes as TFLite Micro) for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, MUL,
  AVERAGE_POOL_2D, MAX_POOL_2D, SOFTMAX and QUANTIZE.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.reference import load_all, run_node
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.softmax import softmax_params, softmax_rows
from edgeq.ir import Node

load_all()  # run_node loads the registry only when it is empty
mbqm = fp.multiply_by_quantized_multiplier


def node(op, **attrs):
    return Node(op, f"t_{op}", [], [], attrs)


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def f32(x) -> float:
    """A scale as TFLite stores it (float32), as a Python float."""
    return float(np.float32(x))


# ---- fixed-point constants and primitives --------------------------------------------

def test_softmax_constants_are_rounded_reals():
    for e, m in fp.EXP_BARREL_MULTIPLIERS:
        assert m == round(2**31 * math.exp(-(2.0**e)))
    assert fp.EXP_MINUS_ONE_EIGHTH_Q31 == round(2**31 * math.exp(-1 / 8))
    assert fp.ONE_THIRD_Q31 == round(2**31 / 3)
    assert fp.FORTY_EIGHT_OVER_17_Q29 == round(2**29 * 48 / 17)
    assert fp.MINUS_32_OVER_17_Q29 == round(-(2**29) * 32 / 17)


def test_exp_and_reciprocal_accuracy():
    a = np.linspace(-(31 << 26), 0, 5001).astype(np.int64)
    got = fp.exp_on_negative_values(a) / 2**31
    assert np.abs(got - np.exp(a / 2**26)).max() < 2e-8 * 64
    x = np.linspace(0, 2**31 - 1, 5001).astype(np.int64)
    r = fp.one_over_one_plus_x_for_x_in_0_1(x) / 2**31
    assert np.abs(r - 1 / (1 + x / 2**31)).max() < 1e-8
    assert list(fp.count_leading_zeros32(np.array([0, 1, 255, 256, 2**31 - 1, -1]))) == [32, 31, 24, 23, 1, 0]


def test_multiplier_example_from_docstring():
    assert fp.quantize_multiplier(0.0123) == (1690499128, -6)
    assert int(mbqm(1000, 1690499128, -6)) == 12


# ---- QConv -----------------------------------------------------------------------------

def slow_conv(x, w, bias, m, s, strides, pads, dil, group, x_zp, y_zp, lo, hi):
    """Direct loops over output pixels and taps, Python ints only."""
    n, ci, h, wd = x.shape
    co, cig, kh, kw = w.shape
    cog = co // group
    ho = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((n, co, ho, wo), np.int8)
    for b in range(n):
        for oc in range(co):
            g = oc // cog
            for oh in range(ho):
                for ow in range(wo):
                    acc = int(bias[oc])
                    for c in range(cig):
                        for i in range(kh):
                            for j in range(kw):
                                ih = oh * strides[0] - pads[0] + i * dil[0]
                                iw = ow * strides[1] - pads[1] + j * dil[1]
                                if 0 <= ih < h and 0 <= iw < wd:
                                    acc += (int(x[b, g * cig + c, ih, iw]) - x_zp) * int(w[oc, c, i, j])
                    v = y_zp + int(mbqm(acc, int(m[oc]), int(s[oc])))
                    y[b, oc, oh, ow] = min(max(v, lo), hi)
    return y


@pytest.mark.parametrize("case", [
    # N, Ci, H, W, Co, kH, kW, strides, pads, dilations, group
    (2, 3, 6, 5, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 4, 7, 7, 6, 3, 2, (2, 1), (0, 2, 1, 0), (2, 1), 2),
    (1, 5, 6, 6, 10, 3, 3, (2, 2), (1, 0, 0, 1), (1, 1), 5),   # depthwise, multiplier 2
    (1, 3, 4, 4, 2, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
])
def test_conv_matches_direct_loops(case):
    n, ci, h, w, co, kh, kw, st, pads, dil, g = case
    rng = np.random.default_rng(sum(case[:7]))
    x = rand_i8(rng, (n, ci, h, w))
    wt = rand_i8(rng, (co, ci // g, kh, kw), -127, 127)
    bias = rng.integers(-3000, 3000, co)
    m, s = fp.quantize_multiplier_array(rng.uniform(0.002, 0.02, co))
    attrs = dict(strides=list(st), pads=list(pads), dilations=list(dil), group=g, x_zp=-9,
                 y_zp=4, act_min=-100, act_max=120)
    got = run_node(node("QConv", **attrs), [x, wt, bias, m, s])
    want = slow_conv(x, wt, bias, m, s, st, pads, dil, g, -9, 4, -100, 120)
    assert np.array_equal(got, want)


def test_conv1d_is_conv2d_with_h1():
    rng = np.random.default_rng(5)
    x, wt = rand_i8(rng, (2, 3, 11)), rand_i8(rng, (4, 3, 3), -127, 127)
    m, s = fp.quantize_multiplier_array(np.full(4, 0.004))
    b = np.arange(4) * 100
    y1 = run_node(node("QConv", strides=[2], pads=[1, 2], dilations=[1], group=1, x_zp=1, y_zp=0),
                  [x, wt, b, m, s])
    y2 = run_node(node("QConv", strides=[1, 2], pads=[0, 1, 0, 2], dilations=[1, 1], group=1,
                       x_zp=1, y_zp=0), [x[:, :, None], wt[:, :, None], b, m, s])
    assert np.array_equal(y1, y2[:, :, 0])


def test_conv_overflow_is_an_error():
    x = np.full((1, 1, 1, 1), 127, np.int8)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    with pytest.raises(OverflowError):
        run_node(node("QConv", x_zp=-128), [x, w, np.array([2**31 - 30000]), np.array([1 << 30]), np.array([0])])


def test_mbqm_left_shift_overflow_is_an_error():
    """C computes x << shift in int32 (as TFLite does); the reference refuses inputs where
    that would wrap instead of silently computing something C cannot."""
    x = np.ones((1, 1, 2, 2), np.int8)
    w = np.ones((1, 1, 1, 1), np.int8)
    ok = run_node(node("QConv"), [x, w, np.array([1 << 20]), np.array([1 << 30]), np.array([10])])
    assert (ok == 127).all()
    with pytest.raises(OverflowError):
        run_node(node("QConv"), [x, w, np.array([1 << 21]), np.array([1 << 30]), np.array([10])])
    with pytest.raises(OverflowError):
        run_node(node("QRequant", x_zp=-128, y_zp=0, mult=1 << 30, shift=24), [x])


# ---- TFLite oracles --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tfl():
    from . import _tflite_oracle
    return _tflite_oracle


@pytest.mark.parametrize("case", [
    # N, H, W, Ci, Co, k, stride, padding, dilation, relu, x_zp, y_zp
    (1, 9, 9, 3, 5, 3, 1, "SAME", 1, False, -3, 7),
    (2, 8, 7, 4, 6, 3, 2, "SAME", 1, True, -128, 127),
    (1, 10, 10, 5, 3, 3, 1, "VALID", 2, False, 127, -128),
    (1, 6, 6, 8, 7, 1, 1, "VALID", 1, False, 0, 0),
])
def test_conv_vs_tflite(tfl, case):
    S = tfl.S
    n, h, w, ci, co, k, st, padding, dil, relu, x_zp, y_zp = case
    rng = np.random.default_rng(h * 100 + ci)
    s_in, s_out = f32(0.05), f32(0.2 + 0.1 * ci)
    s_w = [f32(v) for v in rng.uniform(0.002, 0.02, co)]
    x_nhwc = rand_i8(rng, (n, h, w, ci))
    w_ohwi = rand_i8(rng, (co, k, k, ci), -127, 127)
    bias = rng.integers(-4000, 4000, co).astype(np.int32)
    opt = S.Conv2DOptionsT()
    opt.padding = S.Padding.SAME if padding == "SAME" else S.Padding.VALID
    opt.strideH = opt.strideW = st
    opt.dilationHFactor = opt.dilationWFactor = dil
    opt.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
    if padding == "SAME":
        ho, pt, pb = tfl.same_padding(h, k, st, dil)
        wo, pl, pr = tfl.same_padding(w, k, st, dil)
    else:
        pt = pb = pl = pr = 0
        ho = (h - dil * (k - 1) - 1) // st + 1
        wo = (w - dil * (k - 1) - 1) // st + 1
    want = tfl.run_op(S.BuiltinOperator.CONV_2D, [
        tfl.T((n, h, w, ci), scale=s_in, zero_point=x_zp),
        tfl.T((co, k, k, ci), scale=s_w, zero_point=0, data=w_ohwi),
        tfl.T((co,), np.int32, scale=[s_in * v for v in s_w], zero_point=0, data=bias)],
        tfl.T((n, ho, wo, co), scale=s_out, zero_point=y_zp),
        S.BuiltinOptions.Conv2DOptions, opt, [x_nhwc])
    m, s = fp.quantize_multiplier_array([s_in * v / s_out for v in s_w])
    attrs = dict(strides=[st, st], pads=[pt, pl, pb, pr], dilations=[dil, dil], group=1,
                 x_zp=x_zp, y_zp=y_zp, act_min=max(-128, y_zp) if relu else -128, act_max=127)
    got = run_node(node("QConv", **attrs), [x_nhwc.transpose(0, 3, 1, 2), w_ohwi.transpose(0, 3, 1, 2),
                                            bias, m, s])
    assert np.array_equal(got, want.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("mult,stride,padding", [(1, 1, "SAME"), (2, 2, "SAME"), (1, 2, "VALID")])
def test_depthwise_vs_tflite(tfl, mult, stride, padding):
    S = tfl.S
    n, h, w, ci, k = 1, 9, 8, 5, 3
    co = ci * mult
    rng = np.random.default_rng(mult * 10 + stride)
    s_in, s_out = f32(0.03), f32(0.07)
    s_w = [f32(v) for v in rng.uniform(0.005, 0.03, co)]
    x_nhwc = rand_i8(rng, (n, h, w, ci))
    w_1hwo = rand_i8(rng, (1, k, k, co), -127, 127)
    bias = rng.integers(-2000, 2000, co).astype(np.int32)
    opt = S.DepthwiseConv2DOptionsT()
    opt.padding = S.Padding.SAME if padding == "SAME" else S.Padding.VALID
    opt.strideH = opt.strideW = stride
    opt.depthMultiplier = mult
    opt.dilationHFactor = opt.dilationWFactor = 1
    if padding == "SAME":
        ho, pt, pb = tfl.same_padding(h, k, stride)
        wo, pl, pr = tfl.same_padding(w, k, stride)
    else:
        pt = pb = pl = pr = 0
        ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    want = tfl.run_op(S.BuiltinOperator.DEPTHWISE_CONV_2D, [
        tfl.T((n, h, w, ci), scale=s_in, zero_point=11),
        tfl.T((1, k, k, co), scale=s_w, zero_point=0, data=w_1hwo, qdim=3),
        tfl.T((co,), np.int32, scale=[s_in * v for v in s_w], zero_point=0, data=bias)],
        tfl.T((n, ho, wo, co), scale=s_out, zero_point=-20),
        S.BuiltinOptions.DepthwiseConv2DOptions, opt, [x_nhwc])
    m, s = fp.quantize_multiplier_array([s_in * v / s_out for v in s_w])
    attrs = dict(strides=[stride, stride], pads=[pt, pl, pb, pr], dilations=[1, 1], group=ci,
                 x_zp=11, y_zp=-20, act_min=-128, act_max=127)
    w_onnx = w_1hwo.transpose(3, 0, 1, 2)  # [Co, 1, kH, kW]
    got = run_node(node("QConv", **attrs), [x_nhwc.transpose(0, 3, 1, 2), w_onnx, bias, m, s])
    assert np.array_equal(got, want.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("n,k,co,x_zp,y_zp", [(1, 20, 7, 5, -3), (3, 64, 10, -128, 127), (2, 9, 1, 127, 0)])
def test_fully_connected_vs_tflite(tfl, n, k, co, x_zp, y_zp):
    S = tfl.S
    rng = np.random.default_rng(k)
    s_in, s_w, s_out = f32(0.04), f32(0.01), f32(0.3)
    x = rand_i8(rng, (n, k))
    w = rand_i8(rng, (co, k), -127, 127)
    bias = rng.integers(-3000, 3000, co).astype(np.int32)
    opt = S.FullyConnectedOptionsT()
    want = tfl.run_op(S.BuiltinOperator.FULLY_CONNECTED, [
        tfl.T((n, k), scale=s_in, zero_point=x_zp),
        tfl.T((co, k), scale=s_w, zero_point=0, data=w),
        tfl.T((co,), np.int32, scale=s_in * s_w, zero_point=0, data=bias)],
        tfl.T((n, co), scale=s_out, zero_point=y_zp), S.BuiltinOptions.FullyConnectedOptions, opt, [x])
    m, s = fp.quantize_multiplier_array(np.full(co, s_in * s_w / s_out))
    got = run_node(node("QGemm", x_zp=x_zp, y_zp=y_zp, act_min=-128, act_max=127), [x, w, bias, m, s])
    assert np.array_equal(got, want)
    # and the slow formula
    acc = [[int(bias[c]) + sum((int(x[b, j]) - x_zp) * int(w[c, j]) for j in range(k)) for c in range(co)]
           for b in range(n)]
    slow = np.clip(y_zp + mbqm(np.array(acc), m, s), -128, 127)
    assert np.array_equal(got, slow)


@pytest.mark.parametrize("shapes", [((1, 4, 5, 3), (1, 4, 5, 3)), ((2, 3, 3, 4), (1, 1, 1, 4)),
                                    ((1, 5, 1, 2), (1, 1, 6, 2))])
@pytest.mark.parametrize("scales", [(0.05, 0.07, 0.1), (0.2, 0.01, 0.03), (0.1, 0.1, 0.1)])
def test_add_vs_tflite(tfl, shapes, scales):
    S = tfl.S
    rng = np.random.default_rng(int(scales[0] * 100) + len(shapes[1]) + shapes[0][0])
    sa, sb, sy = (f32(v) for v in scales)
    za, zb, zy = -128, 127, 3
    a, b = rand_i8(rng, shapes[0]), rand_i8(rng, shapes[1])
    out_shape = np.broadcast_shapes(shapes[0], shapes[1])
    want = tfl.run_op(S.BuiltinOperator.ADD, [tfl.T(shapes[0], scale=sa, zero_point=za),
                                              tfl.T(shapes[1], scale=sb, zero_point=zb)],
                      tfl.T(out_shape, scale=sy, zero_point=zy), S.BuiltinOptions.AddOptions,
                      S.AddOptionsT(), [a, b])
    twice = 2 * max(sa, sb)
    am, ash = fp.quantize_multiplier(sa / twice)
    bm, bsh = fp.quantize_multiplier(sb / twice)
    ym, ysh = fp.quantize_multiplier(twice / ((1 << 20) * sy))
    got = run_node(node("QAdd", a_zp=za, b_zp=zb, y_zp=zy, left_shift=20, a_mult=am, a_shift=ash,
                        b_mult=bm, b_shift=bsh, y_mult=ym, y_shift=ysh, act_min=-128, act_max=127),
                   [a.transpose(0, 3, 1, 2), b.transpose(0, 3, 1, 2)])
    assert np.array_equal(got, want.transpose(0, 3, 1, 2))
    # within an LSB of the real sum (where not clipped)
    real = (sa * (a.astype(float) - za) + sb * (b.astype(float) - zb)) / sy + zy
    ok = (real > -127) & (real < 126)
    assert np.abs(want[ok] - real[ok]).max() <= 1.0


@pytest.mark.parametrize("scales", [(0.05, 0.07, 0.1), (0.5, 0.3, 0.02), (0.01, 0.01, 0.5)])
def test_mul_vs_tflite(tfl, scales):
    S = tfl.S
    rng = np.random.default_rng(int(scales[2] * 1000))
    sa, sb, sy = (f32(v) for v in scales)
    a, b = rand_i8(rng, (1, 3, 4, 5)), rand_i8(rng, (1, 1, 4, 1))
    want = tfl.run_op(S.BuiltinOperator.MUL, [tfl.T(a.shape, scale=sa, zero_point=4),
                                              tfl.T(b.shape, scale=sb, zero_point=-128)],
                      tfl.T((1, 3, 4, 5), scale=sy, zero_point=-7), S.BuiltinOptions.MulOptions,
                      S.MulOptionsT(), [a, b])
    ym, ysh = fp.quantize_multiplier(sa * sb / sy)
    got = run_node(node("QMul", a_zp=4, b_zp=-128, y_zp=-7, y_mult=ym, y_shift=ysh), [a, b])
    assert np.array_equal(got, want)  # layout-free: the same broadcast either way


@pytest.mark.parametrize("k,stride,padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "SAME"),
                                              (5, 3, "SAME"), (4, 4, "VALID")])
def test_pools_vs_tflite(tfl, k, stride, padding):
    S = tfl.S
    rng = np.random.default_rng(k * 10 + stride)
    n, h, w, c = 2, 11, 9, 3
    x = rand_i8(rng, (n, h, w, c))
    if padding == "SAME":
        ho, pt, pb = tfl.same_padding(h, k, stride)
        wo, pl, pr = tfl.same_padding(w, k, stride)
    else:
        pt = pb = pl = pr = 0
        ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    opt = S.Pool2DOptionsT()
    opt.padding = S.Padding.SAME if padding == "SAME" else S.Padding.VALID
    opt.strideH = opt.strideW = stride
    opt.filterHeight = opt.filterWidth = k
    io = ([tfl.T((n, h, w, c), scale=0.1, zero_point=-5)], tfl.T((n, ho, wo, c), scale=0.1, zero_point=-5))
    recip, rshift = avgpool_recips(k, k)
    attrs = dict(kernel=[k, k], strides=[stride, stride], pads=[pt, pl, pb, pr], dilations=[1, 1])
    xt = x.transpose(0, 3, 1, 2)
    want = tfl.run_op(S.BuiltinOperator.AVERAGE_POOL_2D, *io, S.BuiltinOptions.Pool2DOptions, opt, [x])
    got = run_node(node("QAvgPool", **attrs, count_include_pad=0, x_zp=-5, recip=recip, rshift=rshift), [xt])
    assert np.array_equal(got, want.transpose(0, 3, 1, 2))
    want = tfl.run_op(S.BuiltinOperator.MAX_POOL_2D, *io, S.BuiltinOptions.Pool2DOptions, opt, [x])
    got = run_node(node("QMaxPool", **attrs), [xt])
    assert np.array_equal(got, want.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("scale", [1 / 256, 0.01, 0.05, 0.1, 0.3, 1.0, 5.0, 1e-4])
@pytest.mark.parametrize("depth", [1, 2, 10, 100, 511])
def test_softmax_vs_tflite(tfl, scale, depth):
    S = tfl.S
    rng = np.random.default_rng(depth)
    x = rand_i8(rng, (6, depth))
    x[1] = 42                      # a flat row
    x[2, :] = -128
    x[2, 0] = 127                  # one dominant tap
    x[3] = rng.integers(120, 128, depth)  # near the maximum
    sc = f32(scale)
    opt = S.SoftmaxOptionsT()
    opt.beta = 1.0
    want = tfl.run_op(S.BuiltinOperator.SOFTMAX, [tfl.T(x.shape, scale=sc, zero_point=7)],
                      tfl.T(x.shape, scale=1 / 256, zero_point=-128), S.BuiltinOptions.SoftmaxOptions,
                      opt, [x])
    got = run_node(node("QSoftmax", axis=-1, beta=1.0, **softmax_params(sc, 1.0)), [x])
    assert np.array_equal(got, want)
    # within a few LSB of the real softmax
    z = sc * (x.astype(float) - x.max(axis=1, keepdims=True))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.abs((got.astype(float) + 128) - np.minimum(p * 256, 255)).max() <= 2.0


@pytest.mark.parametrize("scale", [0.05, 0.2])
def test_softmax_long_rows_vs_tflite(tfl, scale):
    """1000 classes with spread-out logits (sum of exps < 2^28). Flat rows that long make
    TFLite's reference kernel abort (its final shift exceeds 31); edgeq defines 0 there."""
    S = tfl.S
    x = rand_i8(np.random.default_rng(1000), (3, 1000))
    opt = S.SoftmaxOptionsT()
    opt.beta = 1.0
    sc = f32(scale)
    want = tfl.run_op(S.BuiltinOperator.SOFTMAX, [tfl.T(x.shape, scale=sc, zero_point=0)],
                      tfl.T(x.shape, scale=1 / 256, zero_point=-128), S.BuiltinOptions.SoftmaxOptions,
                      opt, [x])
    assert np.array_equal(run_node(node("QSoftmax", axis=-1, **softmax_params(sc)), [x]), want)


def test_softmax_known_values():
    prm = softmax_params(0.1)
    assert prm == {"input_mult": 1717986918, "input_left_shift": 23, "diff_min": -248}
    x = np.array([[5, 5, 5, 5, 5], [-128, 0, 10, 20, 127], [0, 0, 0, 0, -128]], np.int8)
    y = softmax_rows(x, **prm)
    assert y[0].tolist() == [-77] * 5            # 256 / 5 = 51.2 -> 51
    assert y[1].tolist() == [-128, -128, -128, -128, 127]  # exp(-10.7) rounds to 0; 256 clamps
    assert y[2].tolist()[:4] == [-64] * 4 and y[2, 4] == -128   # 64 each
    # flat rows too long for the rounding shift (sum >= 2^28): exactly 0 probability
    y = softmax_rows(np.zeros((1, 600), np.int8), **prm)
    assert (y == -128).all()


def test_softmax_axis():
    rng = np.random.default_rng(3)
    x = rand_i8(rng, (2, 5, 3, 4))
    prm = softmax_params(0.07)
    got = run_node(node("QSoftmax", axis=1, **prm), [x])
    want = softmax_rows(np.moveaxis(x, 1, -1), **prm)
    assert np.array_equal(got, np.moveaxis(want, -1, 1))


def test_requant_vs_tflite(tfl):
    S = tfl.S
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for s_in, z_in, s_out, z_out in ((0.1, 3, 0.05, -20), (0.02, -128, 0.3, 127), (1.0, 0, 1.0, 1),
                                     (0.5, 127, 0.001, -128)):
        want = tfl.run_op(S.BuiltinOperator.QUANTIZE, [tfl.T(x.shape, scale=s_in, zero_point=z_in)],
                          tfl.T(x.shape, scale=s_out, zero_point=z_out), feeds=[x])
        m, s = fp.quantize_multiplier(f32(s_in) / f32(s_out))
        got = run_node(node("QRequant", x_zp=z_in, y_zp=z_out, mult=m, shift=s), [x])
        assert np.array_equal(got, want), (s_in, s_out)


# ---- pooling details -------------------------------------------------------------------

def test_avgpool_rounding_and_padding():
    recip, rshift = avgpool_recips(2, 2)
    nd = node("QAvgPool", kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], recip=recip, rshift=rshift)
    x = np.array([[[[1, 2], [0, 0]]]], np.int8)     # 3/4 -> 1
    assert run_node(nd, [x]).item() == 1
    x = np.array([[[[-1, -1], [0, 0]]]], np.int8)   # -2/4 = -0.5 -> -1 (half away from zero)
    assert run_node(nd, [x]).item() == -1
    x = np.array([[[[1, 1], [0, 0]]]], np.int8)     # +0.5 -> 1
    assert run_node(nd, [x]).item() == 1
    # count_include_pad: the padding taps count and add x_zp (real 0.0)
    recip, rshift = avgpool_recips(3, 3)
    x = np.full((1, 1, 2, 2), 10, np.int8)
    base = dict(kernel=[3, 3], strides=[1, 1], pads=[1, 1, 0, 0], recip=recip, rshift=rshift, x_zp=-2)
    assert run_node(node("QAvgPool", **base, count_include_pad=0), [x])[0, 0, 0, 0] == 10
    # 4 taps of 10 and 5 padding taps of -2: (40 - 10) / 9 = 3.33 -> 3
    assert run_node(node("QAvgPool", **base, count_include_pad=1), [x])[0, 0, 0, 0] == 3


def test_avgpool_exhaustive_against_integer_division():
    """Every reachable sum of every window size up to 7x7 divides like TFLite's C code."""
    recip, rshift = avgpool_recips(7, 7)
    for n in range(1, 50):
        s = np.arange(-128 * n, 127 * n + 1)
        got = fp.round_half_away_div(s, n, recip[n], rshift[n])
        mag = (np.abs(s) + n // 2) // n
        assert np.array_equal(got, np.where(s >= 0, mag, -mag)), n


def test_pools_reject_empty_windows():
    x = np.zeros((1, 1, 2, 2), np.int8)
    with pytest.raises(ValueError):
        run_node(node("QMaxPool", kernel=[1, 1], pads=[1, 1, 0, 0]), [x])


def test_maxpool_padding_never_wins():
    x = np.full((1, 1, 3, 3), -128, np.int8)
    y = run_node(node("QMaxPool", kernel=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]), [x])
    assert (y == -128).all() and y.shape == (1, 1, 3, 3)


# ---- element-wise and data movement ----------------------------------------------------

def test_prelu_close_to_float():
    rng = np.random.default_rng(8)
    x = rand_i8(rng, (2, 4, 5, 5))
    sx, zx, sy, zy = 0.05, -10, 0.04, 5
    slopes = np.array([0.25, -0.5, 0.0, 1.5])
    pm, ps = fp.quantize_multiplier(sx / sy)
    nm, ns = fp.quantize_multiplier_array(np.abs(slopes) * sx / sy)
    got = run_node(node("QPrelu", x_zp=zx, y_zp=zy),
                   [x, np.array([pm]), np.array([ps]), nm, ns, np.sign(slopes).astype(np.int32)])
    real = sx * (x.astype(float) - zx)
    real = np.where(real >= 0, real, real * slopes.reshape(1, 4, 1, 1))
    want = np.clip(np.round(real / sy) + zy, -128, 127)
    assert np.abs(got - want).max() <= 1


def test_lut_and_data_movement():
    rng = np.random.default_rng(9)
    table = rand_i8(rng, 256)
    x = rand_i8(rng, (2, 3, 4))
    assert np.array_equal(run_node(node("QLut", fn="x"), [x, table]), table[x.astype(int) + 128])
    assert np.array_equal(run_node(node("QTranspose", perm=[2, 0, 1]), [x]), x.transpose(2, 0, 1))
    assert np.array_equal(run_node(node("QTranspose"), [x]), x.transpose(2, 1, 0))
    assert np.array_equal(run_node(node("QConcat", axis=1), [x, x[:, :1]]),
                          np.concatenate([x, x[:, :1]], axis=1))
    y = run_node(node("QPad", pads=[0, 1, 0, 1, 0, 2], value=-7), [x])
    assert y.shape == (3, 4, 6) and (y[2] == -7).all() and np.array_equal(y[:2, 1:, :4], x)
    assert (run_node(node("QPad", pads=[1, 0, 0, 0, 0, 0], x_zp=9), [x])[0] == 9).all()
    assert run_node(node("QReshape", shape=[0, -1]), [x]).shape == (2, 12)


def test_run_node_loads_every_kernel_even_after_one_module_was_imported_alone():
    # A fresh interpreter: importing one kernel module fills the registry partially; run_node
    # must still find the others (it once only loaded when the registry was empty).
    import subprocess
    import sys
    code = ("import numpy as np\n"
            "import edgeq.reference.conv\n"
            "from edgeq.reference import run_node\n"
            "from edgeq.ir import Node\n"
            "n = Node('QReshape', 'r', ['x'], ['y'], {'shape': [2, 2]})\n"
            "y = run_node(n, [np.zeros((1, 4), np.int8)])\n"
            "print(y.shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 2)"
