"""The quantizer, op by op: a tiny float graph per op, quantized with calibrated ranges,
run by the integer reference; the dequantized result must track float (SQNR per op).
Plus the defining properties of weights, bias, multipliers, the overflow guard and
QRequant insertion before Concat."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.calibration.calibrate import calibrate
from edgeq.errors import EdgeqError
from edgeq.floatexec.executor import run_float
from edgeq.fixedpoint import quantize_multiplier
from edgeq.reference import load_all
from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
from edgeq.ir import QDOMAIN, Graph, Node, Tensor
from edgeq.quantization.quantize import quantize
from edgeq.quantization.rules.common import act_qparams, quantize_clamp
from edgeq.quantization.rules.multipliers import f32
from edgeq.quantization.weights import fake_quantize_weights, quantize_weights

RNG = np.random.default_rng(0)
CONV = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1)


# ---- helpers -------------------------------------------------------------------------------

class G:
    """Build a float graph node by node; shapes of outputs come from running float."""

    def __init__(self, **inputs: tuple):
        self.g = Graph("t")
        for name, shape in inputs.items():
            self.g.add_tensor(Tensor(name, shape, "float32"))
            self.g.inputs.append(name)

    def const(self, name, data):
        return self.g.add_const(name, np.asarray(data, dtype=np.float32))

    def node(self, op, inputs, **attrs):
        out = f"t{len(self.g.nodes)}"
        self.g.nodes.append(Node(op, f"n{len(self.g.nodes)}_{op}", list(inputs), [out], attrs))
        feeds = {n: np.zeros(self.g.tensors[n].shape, np.float32) for n in self.g.inputs}
        shape = run_float(self.g, feeds, outputs=[out])[out].shape
        self.g.add_tensor(Tensor(out, tuple(shape), "float32"))
        return out

    def done(self, *outputs):
        self.g.outputs = list(outputs)
        return self.g


def sqnr_db(ref, test) -> float:
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    noise = np.sum((ref - test) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(ref ** 2) / noise)


def feeds_for(g, n, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return {x: (scale * rng.standard_normal((n,) + g.tensors[x].shape[1:])).astype(np.float32)
            for x in g.inputs}


def need_kernels(q):
    missing = {n.op for n in q.nodes} - set(load_all())
    if missing:
        pytest.skip(f"integer reference kernels not written yet: {sorted(missing)}")


def roundtrip(g, method="minmax", **qopts):
    """(float outputs, dequantized int8 outputs, qgraph) on held-out data."""
    ranges = calibrate(g, feeds_for(g, 64, seed=1), method=method, progress=False)
    q = quantize(g, ranges, **qopts)
    need_kernels(q)
    test = feeds_for(g, 16, seed=2)
    ref = run_float(g, test)
    out = dequantize_outputs(q, run_reference(q, quantize_inputs(q, test)))
    return ref, out, q


def check_sqnr(g, min_db, **kw):
    ref, out, q = roundtrip(g, **kw)
    for name in g.outputs:
        db = sqnr_db(ref[name], out[name])
        assert db >= min_db, f"{name}: SQNR {db:.1f} dB < {min_db} dB"
    return q


# ---- every op --------------------------------------------------------------------------------

CONV_CASES = {
    "plain_relu": (dict(CONV, act_min=0.0, act_max=float("inf")), (8, 4, 3, 3)),
    "stride2_asym": (dict(CONV, strides=[2, 2], pads=[0, 0, 1, 1]), (8, 4, 3, 3)),
    "depthwise_relu6": (dict(CONV, group=4, act_min=0.0, act_max=6.0), (4, 1, 3, 3)),
    "dilated": (dict(CONV, dilations=[2, 2], pads=[2, 2, 2, 2]), (6, 4, 3, 3)),
    "pointwise": (dict(CONV, pads=[0, 0, 0, 0]), (6, 4, 1, 1)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
@pytest.mark.parametrize("gran", ["per-channel", "per-tensor"])
def test_conv(case, gran):
    attrs, wshape = CONV_CASES[case]
    b = G(x=(1, 4, 10, 10))
    w = b.const("w", RNG.standard_normal(wshape) * 0.3)
    bias = b.const("b", RNG.standard_normal(wshape[0]) * 0.2)
    g = b.done(b.node("Conv", ["x", w, bias], **attrs))
    q = check_sqnr(g, 28, weight_granularity=gran)
    assert q.nodes[0].op == "QConv" and q.nodes[0].domain == QDOMAIN


def test_gemm_and_4bit_weights():
    b = G(x=(1, 32))
    w = b.const("w", RNG.standard_normal((10, 32)) * 0.2)
    g = b.done(b.node("Gemm", ["x", w, b.const("b", RNG.standard_normal(10))]))
    check_sqnr(g, 30)
    q = check_sqnr(g, 12, weight_bits=4)
    wq = q.tensors["w"]
    assert wq.q.bits == 4 and np.abs(wq.data).max() <= 7


UNARY = {  # op: (attrs, min SQNR dB)
    "Relu": ({}, 35), "Clip": ({"min": -1.0, "max": 2.0}, 35), "Sigmoid": ({}, 35),
    "Tanh": ({}, 33), "HardSwish": ({}, 33),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5}, 35), "LeakyRelu": ({"alpha": 0.1}, 33),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_lut(op):
    attrs, db = UNARY[op]
    b = G(x=(1, 3, 5, 5))
    g = b.done(b.node(op, ["x"], **attrs))
    q = check_sqnr(g, db)
    assert [n.op for n in q.nodes] == ["QLut"]
    assert q.tensors[q.nodes[0].inputs[1]].data.shape == (256,)


def test_prelu_scalar_is_lut_per_channel_is_qprelu():
    b = G(x=(1, 3, 5, 5))
    g = b.done(b.node("PRelu", ["x", b.const("s", [[[0.25]]])]))
    assert [n.op for n in check_sqnr(g, 33).nodes] == ["QLut"]
    b = G(x=(1, 3, 5, 5))
    g = b.done(b.node("PRelu", ["x", b.const("s", np.array([0.25, -0.5, 0.0]).reshape(3, 1, 1))]))
    assert [n.op for n in check_sqnr(g, 33).nodes] == ["QPrelu"]


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_add_mul(op):
    b = G(x=(1, 4, 6, 6), y=(1, 4, 6, 6))
    g = b.done(b.node(op, ["x", "y"], act_min=float("-inf"), act_max=float("inf")))
    # a product of two Gaussians is heavy-tailed: min/max ranges give it fewer levels
    q = check_sqnr(g, 33 if op == "Add" else 25)
    assert q.nodes[0].op == "Q" + op


def test_add_constant_broadcast_and_fused_relu():
    b = G(x=(1, 4, 6, 6))
    c = b.const("c", RNG.standard_normal((4, 1, 1)))
    g = b.done(b.node("Add", ["x", c], act_min=0.0, act_max=float("inf")))
    q = check_sqnr(g, 30)
    assert q.nodes[0].attrs["act_min"] == max(-128, int(q.tensors[g.outputs[0]].q.zero_point))


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])),
    ("AveragePool", dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)),
    ("AveragePool", dict(kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], count_include_pad=0)),
    ("GlobalAveragePool", {}),
])
def test_pools_keep_input_params(op, attrs):
    b = G(x=(1, 3, 8, 8))
    g = b.done(b.node(op, ["x"], **attrs))
    ranges = calibrate(g, feeds_for(g, 16), method="minmax", progress=False)
    q = quantize(g, ranges)
    need_kernels(q)
    qx, qy = q.tensors["x"].q, q.tensors[g.outputs[0]].q
    assert float(qx.scale) == float(qy.scale) and int(qx.zero_point) == int(qy.zero_point)
    # Defining property: the int8 result is the float op on the dequantized input, exactly
    # for max, within half a step (one rounding) for the mean.
    xq = quantize_inputs(q, feeds_for(g, 6, seed=4))
    y = dequantize_outputs(q, run_reference(q, xq))[g.outputs[0]]
    expect = run_float(g, dequantize_outputs(q, xq))[g.outputs[0]]
    tol = 0.0 if op == "MaxPool" else float(qy.scale) * (0.5 + 1e-4)  # float32 slack
    assert np.max(np.abs(y - expect)) <= tol


@pytest.mark.parametrize("op,attrs", [
    ("Reshape", dict(shape=[1, 48])),
    ("Transpose", dict(perm=[0, 2, 3, 1])),
    ("Pad", dict(pads=[0, 0, 1, 2, 0, 0, 2, 1], value=0.0)),
])
def test_data_movement_is_exact(op, attrs):
    b = G(x=(1, 3, 4, 4))
    g = b.done(b.node(op, ["x"], **attrs))
    ranges = calibrate(g, feeds_for(g, 8), method="minmax", progress=False)
    q = quantize(g, ranges)
    need_kernels(q)
    test = feeds_for(g, 5, seed=3)
    xq = quantize_inputs(q, test)
    y = run_reference(q, xq)[g.outputs[0]]
    # Moving int8 codes is exact: it equals the float op applied to the dequantized input.
    expect = run_float(g, dequantize_outputs(q, xq))[g.outputs[0]]
    np.testing.assert_array_equal(dequantize_outputs(q, {g.outputs[0]: y})[g.outputs[0]], expect)


def test_concat_inserts_requant_only_where_params_differ():
    b = G(x=(1, 2, 4, 4), y=(1, 3, 4, 4))
    g = b.done(b.node("Concat", ["x", "y"], axis=1))
    ranges = {"x": (0.0, 1.0), "y": (-2.0, 4.0), g.outputs[0]: (-2.0, 4.0)}
    q = quantize(g, ranges)
    assert [n.op for n in q.nodes] == ["QRequant", "QConcat"]
    assert q.nodes[0].inputs == ["x"] and q.nodes[1].inputs[1] == "y"
    need_kernels(q)
    test = {"x": RNG.uniform(0, 1, (4, 2, 4, 4)).astype(np.float32),
            "y": RNG.uniform(-2, 4, (4, 3, 4, 4)).astype(np.float32)}
    out = dequantize_outputs(q, run_reference(q, quantize_inputs(q, test)))[g.outputs[0]]
    assert sqnr_db(run_float(g, test)[g.outputs[0]], out) > 35


def test_softmax_fixed_output_params():
    b = G(x=(1, 10))
    g = b.done(b.node("Softmax", ["x"], axis=1))
    q = quantize(g, {"x": (-6.0, 6.0), g.outputs[0]: (0.0, 1.0)})
    qy = q.tensors[g.outputs[0]].q
    assert float(qy.scale) == 1 / 256 and int(qy.zero_point) == -128
    check_sqnr(g, 25)


def test_small_cnn_end_to_end():
    b = G(x=(1, 3, 12, 12))
    c1 = b.node("Conv", ["x", b.const("w1", RNG.standard_normal((8, 3, 3, 3)) * 0.3),
                         b.const("b1", RNG.standard_normal(8) * 0.1)], **dict(CONV, act_min=0.0, act_max=6.0))
    c2 = b.node("Conv", [c1, b.const("w2", RNG.standard_normal((8, 1, 3, 3)) * 0.3),
                         b.const("b2", np.zeros(8))], **dict(CONV, group=8))
    s = b.node("Add", [c1, c2], act_min=0.0, act_max=float("inf"))
    p = b.node("GlobalAveragePool", [s])
    f = b.node("Reshape", [p], shape=[1, 8])
    y = b.node("Gemm", [f, b.const("w3", RNG.standard_normal((5, 8))), b.const("b3", np.zeros(5))])
    g = b.done(b.node("Softmax", [y], axis=1))
    q = check_sqnr(g, 22, method="percentile")
    for name in [*q.inputs, *q.outputs] + [n.outputs[0] for n in q.nodes]:
        t = q.tensors[name]
        assert t.dtype == "int8" and t.q is not None
    assert set(q.meta["quant_layers"]) >= {n.name for n in g.nodes if n.op in ("Conv", "Gemm")}


# ---- construction properties -------------------------------------------------------------------

def test_weight_quantization_properties():
    W = RNG.standard_normal((6, 3, 3, 3))
    W[2] = 0.0
    q, s = quantize_weights(W)
    assert q.dtype == np.int8 and s.shape == (6,) and np.abs(q).max() <= 127
    live = [c for c in range(6) if c != 2]
    assert np.all(np.abs(q[live]).reshape(5, -1).max(axis=1) == 127)  # full range used
    assert s[2] == 1.0 and not q[2].any()
    err = np.abs(fake_quantize_weights(W) - W)
    assert np.all(err <= s.reshape(-1, 1, 1, 1) / 2 + 1e-12)
    u = 2.0 ** -7  # max 127 u: the scale u is exact in float32, so the ties below are exact
    q1, s1 = quantize_weights(np.array([[127 * u, 0.5 * u, 1.5 * u]]), per_channel=False)
    assert s1 == u and q1.tolist() == [[127, 0, 2]]  # 0.5 -> 0 and 1.5 -> 2 (half to even)


def test_weights_already_on_an_int8_grid_stay_exact_per_channel():
    # a per-tensor int8 model exported as float (kws01's convs): k * s, |k| <= 127
    s = 0.0123
    k = RNG.integers(-40, 41, size=(5, 4, 3, 3)).astype(np.float64)
    k[0, 0, 0, 0], k[3] = 127, np.clip(k[3], -3, 3)
    W = (k * s).astype(np.float32)
    q, sc = quantize_weights(W)
    j = np.round(s / sc).reshape(-1, 1, 1, 1)  # channel c's grid is s / j_c
    assert np.array_equal(q, k * j)  # every weight exact: only float32 storage rounding remains
    assert np.allclose(fake_quantize_weights(W), W, rtol=1e-6, atol=0)
    assert np.all(np.abs(q.astype(int)).reshape(5, -1).max(axis=1) * 2 > 127)  # still most of each channel's range
    plain = np.abs(W.astype(np.float64)).reshape(5, -1).max(axis=1) / 127
    assert sc[0] == pytest.approx(s, rel=1e-6)
    # off the grid by more than the tolerance: the usual max|W_c| / 127 scales
    W2 = W.copy()
    W2[1, 0, 0, 0] += s * 0.3
    assert np.allclose(quantize_weights(W2)[1], np.abs(W2.astype(np.float64)).reshape(5, -1).max(axis=1) / 127)
    # int4 cannot hold an int8 grid: plain int4 scales
    assert np.allclose(quantize_weights(W, bits=4)[1], plain * 127 / 7)


def test_bias_and_multipliers_match_their_definitions():
    b = G(x=(1, 4, 6, 6))
    Wf = RNG.standard_normal((5, 4, 3, 3)) * 0.2
    Bf = RNG.standard_normal(5)
    g = b.done(b.node("Conv", ["x", b.const("w", Wf), b.const("b", Bf)], **CONV))
    ranges = {"x": (-1.0, 2.0), g.outputs[0]: (-3.0, 5.0)}
    q = quantize(g, ranges)
    node = q.nodes[0]
    s_in, s_out = f32(3.0 / 255), f32(8.0 / 255)  # every scale of the graph is a float32 value
    s_w = q.tensors["w"].q.scale
    assert np.array_equal(s_w, s_w.astype(np.float32))
    bias, mult, shift = (q.tensors[n].data for n in node.inputs[2:])
    assert bias.dtype == np.int32 and mult.dtype == np.int32
    np.testing.assert_array_equal(bias, np.round(Bf.astype(np.float32) / (s_in * s_w)))
    assert np.all((mult >= 1 << 30) & (mult.astype(np.int64) < 1 << 31))
    real = mult.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
    np.testing.assert_allclose(real, s_in * s_w / s_out, rtol=1e-9)
    # exactly TFLite's QuantizeMultiplier of double(s_in) * double(s_w[c]) / double(s_out)
    want = [quantize_multiplier(s_in * float(w) / s_out) for w in s_w]
    assert [(int(m), int(s)) for m, s in zip(mult, shift)] == want
    assert node.attrs["x_zp"] == act_qparams(-1, 2).zero_point == -43


def test_activation_params_convention():
    q = act_qparams(0.0, 6.0)
    assert q.zero_point == -128 and np.isclose(q.scale, 6 / 255)
    assert act_qparams(-1.0, 3.0).zero_point == -64
    assert np.isclose(act_qparams(1.0, 2.0).scale, 2 / 255)  # widened to include 0
    assert quantize_clamp(q, 0.0, 6.0) == (-128, 127)
    q2 = act_qparams(-2.0, 2.0)  # zp = round(-128 + 2 / float32(4/255)) = -1
    assert quantize_clamp(q2, 0.0, float("inf")) == (int(q2.zero_point), 127) == (-1, 127)
    # Relu6 on a scale where 6 / s lies near a half: TFLite's float32 division and round half
    # away from zero decide it, so the export can fuse the clamp as RELU6
    from edgeq.export.tflite.act import tflite_ranges
    from tflite.ActivationFunctionType import ActivationFunctionType as AF
    # (-4.5, 7.5): 6 / s is 127.4999975 in double but 127.5 in float32 -> 96, not 95
    for lo, hi in ((0.0, 6.0), (-0.5, 6.5), (-4.5, 7.5), (-1.375, 10.625)):
        qa = act_qparams(lo, hi)
        assert quantize_clamp(qa, 0.0, 6.0) == tflite_ranges(float(qa.scale), int(qa.zero_point))[AF.RELU6]


def test_range_without_a_float32_scale_is_a_clear_error():
    for lo, hi in ((0.0, 1e300), (0.0, 1e-43)):
        with pytest.raises(EdgeqError, match="no float32 scale"):
            act_qparams(lo, hi)


def test_accumulator_overflow_is_refused():
    K = 66500  # 66500 * 255 * 127 > 2^31
    b = G(x=(1, K))
    g = b.done(b.node("Gemm", ["x", b.const("w", np.ones((2, K))), b.const("b", np.zeros(2))]))
    with pytest.raises(EdgeqError, match="accumulator"):
        quantize(g, {"x": (-1.0, 1.0), g.outputs[0]: (-10.0, 10.0)})


def test_shifted_accumulator_overflow_is_refused():
    K = 40000  # K * 255 * 127 ~ 1.3e9 fits, but not after MBQM's left shift by 1
    b = G(x=(1, K))
    g = b.done(b.node("Gemm", ["x", b.const("w", np.ones((2, K))), b.const("b", np.zeros(2))]))
    with pytest.raises(EdgeqError, match="multiplier"):
        quantize(g, {"x": (-1.0, 1.0), g.outputs[0]: (-0.001, 0.001)})


def test_large_bias_on_tiny_weights_raises_the_channel_scale():
    b = G(x=(1, 16))
    W = RNG.standard_normal((3, 16)) * 0.1
    W[1] = 1e-9  # near-dead channel with a large bias: its int32 bias would not fit
    g = b.done(b.node("Gemm", ["x", b.const("w", W), b.const("b", [0.1, 50.0, -0.2])]))
    ranges = {"x": (-1.0, 1.0), g.outputs[0]: (-60.0, 60.0)}
    q = quantize(g, ranges)
    info = q.meta["quant_layers"][g.nodes[0].name]
    assert info["scales_raised_for_bias"] == 1 and info["acc_bound"] < 2 ** 31
    need_kernels(q)
    x = RNG.uniform(-1, 1, (8, 16)).astype(np.float32)
    out = dequantize_outputs(q, run_reference(q, quantize_inputs(q, {"x": x})))[g.outputs[0]]
    np.testing.assert_allclose(out[:, 1], 50.0, atol=0.5)


def test_unsupported_op_names_op_and_node():
    b = G(x=(1, 4))
    g = b.done(b.node("Relu", ["x"]))
    g.nodes[0].op = "Einsum"
    with pytest.raises(EdgeqError, match="Einsum.*n0_Relu"):
        quantize(g, {"x": (0, 1), g.outputs[0]: (0, 1)})


def test_missing_range_is_an_edgeq_error():
    b = G(x=(1, 4))
    g = b.done(b.node("Relu", ["x"]))
    with pytest.raises(EdgeqError, match="no activation range"):
        quantize(g, {"x": (0, 1)})


def test_quantize_multiplier_reference_value():
    assert quantize_multiplier(0.0123) == (1690499128, -6)
