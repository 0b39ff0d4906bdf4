"""GPTQ rounding of int4 weights (edgeq/round_weights.py): it lowers the layer's output
error on the data it saw, stays on a per-channel grid that the quantizer keeps exactly,
and the resulting integer graph lowers bit-exactly like any other."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.quantization.gptq import gptq_layer


def _correlated_inputs(rng, groups: int, k: int, n: int) -> np.ndarray:
    """Inputs whose K features co-vary (as neighbouring pixels and channels do) and have a
    nonzero mean (as after a ReLU): H = X X^T / n, (groups, K, K)."""
    mix = rng.normal(size=(groups, k, k)) / np.sqrt(k) + np.eye(k)
    x = np.einsum("gkm,gmn->gkn", mix, rng.normal(size=(groups, k, n))) + 0.5
    return np.einsum("gkn,gmn->gkm", x, x) / n


@pytest.mark.parametrize("shape,groups", [((16, 8, 3, 3), 1), ((24, 1, 3, 3), 24), ((10, 40), 1), ((12, 2, 3, 3), 6)])
def test_gptq_lowers_output_error_and_stays_on_a_per_channel_grid(shape, groups):
    rng = np.random.default_rng(0)
    W = rng.normal(size=shape)
    k = int(np.prod(shape[1:]))
    H = _correlated_inputs(rng, groups, k, 4000)
    Q, err = gptq_layer(W, H, bits=4, groups=groups)
    assert Q.shape == W.shape
    assert err["output_error_gptq"] < 0.8 * err["output_error_nearest"], err
    # recompute the error here rather than trusting the function's own number
    d = (Q - W).reshape(groups, shape[0] // groups, k)
    w = W.reshape(groups, shape[0] // groups, k)
    rel = np.einsum("grk,gkm,grm->", d, H, d) / np.einsum("grk,gkm,grm->", w, H, w)
    assert rel == pytest.approx(err["output_error_gptq"], abs=1e-5)
    # every channel is k * s_c with integers |k| <= 7 for one s_c
    for c in Q.reshape(shape[0], -1):
        assert any(np.allclose(c / np.max(np.abs(c)) * j, np.round(c / np.max(np.abs(c)) * j), atol=1e-9)
                   for j in range(1, 8))


def test_gptq_zeroes_weights_of_inputs_that_never_fire():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(6, 5))
    H = _correlated_inputs(rng, 1, 5, 1000)
    H[0, 2, :] = H[0, :, 2] = 0.0  # input 2 is always zero: its weight cannot matter
    Q, err = gptq_layer(W, H, bits=4)
    assert np.all(Q[:, 2] == 0.0) and np.isfinite(Q).all()
    assert err["output_error_gptq"] < err["output_error_nearest"]


def test_per_channel_grid_is_kept_even_when_a_channel_tops_out_below_qmax():
    """GPTQ can leave a channel's largest code at 6 (of 7): max|W_c|/7 would re-round the
    whole channel; the quantizer must find the channel's own grid instead."""
    from edgeq.quantization.weights import quantize_weights
    rng = np.random.default_rng(2)
    s = rng.uniform(0.01, 0.1, 8)
    codes = rng.integers(-7, 8, size=(8, 18))
    codes[:3] = np.clip(codes[:3], -6, 6)
    codes[:, 0] = 6  # every channel reaches at least 6
    W = (codes * s[:, None]).reshape(8, 2, 3, 3).astype(np.float32)
    q, scales = quantize_weights(W, bits=4)
    assert np.array_equal(q.reshape(8, -1), codes)
    assert np.allclose(scales, s, rtol=1e-6)
    # ordinary float weights are not mistaken for a grid
    V = rng.normal(size=(8, 2, 3, 3))
    _, sv = quantize_weights(V, bits=4)
    assert np.allclose(sv, np.abs(V).reshape(8, -1).max(1) / 7)


@pytest.fixture(scope="module")
def dscnn_gptq():
    from edgeq.models import fmnist
    from edgeq.models.registry import model_path
    from edgeq.driver.pipeline import CompileOptions, compile_model
    if not fmnist.available():
        pytest.skip("Fashion-MNIST is not installed (make setup)")
    images, labels = fmnist.load_fmnist("train")
    calib = fmnist.preprocess(images[:64])
    res = {}
    for rounding in ("gptq", "nearest"):
        opts = CompileOptions(target="reference", weight_bits=4, weight_rounding=rounding,
                              int_bias_correction=False, progress=False, test_vectors=0)
        res[rounding] = compile_model(model_path("dscnn"), opts, None, calib=calib)
    test, ytest = fmnist.load_fmnist("test")
    return res, fmnist.preprocess(test[:500]), ytest[:500]


def test_compile_with_gptq_quantizes_to_gptq_integers_and_is_more_accurate(dscnn_gptq):
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    from edgeq.passes.round_weights_gptq import gptq_rounded as round_weights_gptq
    res, x, y = dscnn_gptq
    g, nearest = res["gptq"], res["nearest"]
    assert set(g.report["gptq_rounding"]) == {n.name for n in g.float_graph.nodes if n.op in ("Conv", "Gemm")}
    assert "gptq_rounding" not in nearest.report
    # the integer weights times their scales are exactly the GPTQ-rounded float weights
    feeds = {g.float_graph.inputs[0]: fmnist_calib(64)}
    rounded = round_weights_gptq(g.float_graph, feeds, 4)
    for qn in g.qgraph.nodes:
        if qn.op in ("QConv", "QGemm"):
            w = g.qgraph.const(qn.inputs[1]).astype(np.float64)
            s = np.asarray(g.qgraph.tensors[qn.inputs[1]].q.scale, np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
            want = rounded.const(rounded.node_by_name(qn.name).inputs[1]).astype(np.float64)
            assert np.allclose(w * s, want, rtol=1e-6, atol=1e-9), qn.name
    acc = {}
    for k, r in res.items():
        q = r.qgraph
        out = dequantize_outputs(q, run_reference(q, quantize_inputs(q, {q.inputs[0]: x})))[q.outputs[0]]
        acc[k] = float((out.argmax(1) == y).mean())
    assert acc["gptq"] > acc["nearest"], acc


def fmnist_calib(n):
    from edgeq.models import fmnist
    images, _ = fmnist.load_fmnist("train")
    return fmnist.preprocess(images[:n])


def test_gptq_int4_graph_is_bit_exact_on_the_host(dscnn_gptq, tmp_path):
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    from edgeq.report.report import base_report
    from edgeq.targets import get_target
    res, x, _ = dscnn_gptq
    qg = res["gptq"].qgraph
    t = get_target("host")
    q = quantize_inputs(qg, {qg.inputs[0]: x[:8]})
    t.build(qg, tmp_path, base_report(qg, "host"), {k: v[:2] for k, v in q.items()})
    got, want = t.run(tmp_path, q), run_reference(qg, q)
    assert np.array_equal(got[qg.outputs[0]], want[qg.outputs[0]])


def test_without_calibration_int4_is_rounded_to_nearest_with_a_notice():
    from edgeq.models.registry import model_path
    from edgeq.driver.pipeline import CompileOptions, compile_model
    res = compile_model(model_path("dscnn"), CompileOptions(weight_bits=4, progress=False, test_vectors=0),
                        None, calib=None)
    assert "gptq_rounding" not in res.report
    assert any("rounded to nearest" in n and "--calib" in n for n in res.report["notices"])


def test_unknown_rounding_is_a_clear_error():
    from edgeq.errors import EdgeqError
    from edgeq.models.registry import model_path
    from edgeq.driver.pipeline import CompileOptions, compile_model
    with pytest.raises(EdgeqError, match="gptq or nearest"):
        compile_model(model_path("dscnn"), CompileOptions(weight_bits=4, weight_rounding="best", progress=False),
                      None, calib=None)


def test_measured_sensitivity_prices_the_rounding_the_compiler_uses():
    """With rounding="gptq" a layer's 4-bit sensitivity is the output noise of that layer
    GPTQ-rounded alone: lower than round-to-nearest's in total, the same at 8 bits."""
    from edgeq.mixed_precision.layers import weighted_layers
    from edgeq.mixed_precision.sensitivity import measured_sensitivity
    from edgeq.models.registry import model_path
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from edgeq.driver.pipeline import CompileOptions, float_passes, run_float_passes
    g = import_onnx(model_path("dscnn"))
    g = run_float_passes(g, PassContext(calib=None, options={}), float_passes(CompileOptions(progress=False)))
    feeds = {g.inputs[0]: fmnist_calib(32)}
    layers = weighted_layers(g)
    near, _ = measured_sensitivity(g, feeds, layers, rounding="nearest")
    gptq, _ = measured_sensitivity(g, feeds, layers, rounding="gptq")
    assert all(gptq[l.name][8] == near[l.name][8] for l in layers)
    assert sum(gptq[l.name][4] for l in layers) < 0.7 * sum(near[l.name][4] for l in layers)


def test_hawq_perturbation_in_the_input_metric():
    """hawq with rounding="gptq": same Hessian traces, perturbation measured in the layer
    inputs' metric. GPTQ lowers that perturbation for every 4-bit layer, and at 8 bits
    (round to nearest, noise independent of the inputs) it stays near ||dW||^2."""
    from edgeq.mixed_precision.layers import weighted_layers
    from edgeq.mixed_precision.sensitivity import _input_metric_perturbation, perturbation, _rounder
    from edgeq.models.registry import model_path
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from edgeq.driver.pipeline import CompileOptions, float_passes, run_float_passes
    g = import_onnx(model_path("dscnn"))
    g = run_float_passes(g, PassContext(calib=None, options={}), float_passes(CompileOptions(progress=False)))
    feeds = {g.inputs[0]: fmnist_calib(32)}
    layers = weighted_layers(g)
    from edgeq.quantization.gptq import layer_hessians
    metric = _input_metric_perturbation(g, feeds, layers)
    H = layer_hessians(g, feeds, [l.name for l in layers])
    for l in layers:
        if np.all(np.einsum("gkk->gk", H[l.name]) > 0):  # a dead input's weight error costs nothing here
            p8 = perturbation(g, l, 8, True)
            assert 0.3 * p8 < metric(l, 8) < 3 * p8, l.name
        # nearest rounding measured in the same metric is larger than GPTQ's
        W = np.asarray(g.const(l.weight), np.float64)
        dW = (_rounder(g, feeds, layers, True, "nearest")(l, W, 4) - W).reshape(H[l.name].shape[0], -1, H[l.name].shape[1])
        near = np.sum(H[l.name].shape[1] * np.einsum("grk,gkm,grm->g", dW, H[l.name], dW)
                      / np.maximum(np.einsum("gkk->g", H[l.name]), 1e-30))
        assert metric(l, 4) < near, l.name


def test_cli_int4_with_calib_reports_gptq(tmp_path):
    import json
    from typer.testing import CliRunner
    from edgeq.cli import app
    from edgeq.models.registry import model_path
    calib = tmp_path / "calib.npy"
    np.save(calib, fmnist_calib(32))
    out = tmp_path / "b"
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--calib", str(calib), "--weight-bits", "4",
                                 "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "GPTQ on 10 layer(s)" in r.output
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["gptq_rounding"]) == 10
    r = CliRunner().invoke(app, ["compile", str(model_path("dscnn")), "--calib", str(calib), "--weight-bits", "4",
                                 "--weight-rounding", "nearest", "-o", str(out), "-q"])
    assert r.exit_code == 0 and "GPTQ" not in r.output
    assert "gptq_rounding" not in json.loads((out / "report.json").read_text())
