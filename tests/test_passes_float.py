"""Float passes, each tested by its defining property, with the verifier after every pass."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.floatexec.executor import run_float
from edgeq.ir import Graph, Node, QParams, Tensor
from edgeq.importer.load import import_onnx
from edgeq.passctx import PassContext
from edgeq.passes.fold_add_into_bias import fold_add_into_bias
from edgeq.passes.fold_batchnorm import fold_batchnorm
from edgeq.passes.fold_constants import fold_constants
from edgeq.passes.fuse_activation import fuse_activation
from edgeq.passes.remove_identity import remove_identity
from edgeq.graphio.verify import verify
from tests._onnx_builders import exported, rand
from tests.conftest import mlperf_model

ALL = [fold_constants, remove_identity, fold_batchnorm, fold_add_into_bias, fuse_activation]


def _outputs(g, feeds):
    return run_float(g, feeds)


def _assert_same_function(before, after, feeds, tol=1e-5):
    a, b = run_float(before, feeds), run_float(after, feeds)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=tol, atol=tol)


def _apply(g, p):
    ctx = PassContext()
    out = p(g.copy(), ctx)
    verify(out)
    return out, ctx


# ---- whole pipeline on real graphs --------------------------------------------------------------

@pytest.mark.parametrize("net,exporter", [("convbn", "legacy"), ("acts", "legacy"), ("convbn", "dynamo")])
def test_pipeline_on_torch_models(net, exporter):
    path, shape = exported(net, exporter)
    g0 = import_onnx(path)
    g = g0.copy()
    ctx = PassContext()
    for p in ALL:
        g = p(g, ctx)
        verify(g)
    assert "BatchNormalization" not in g.ops() and "Identity" not in g.ops()
    if net == "convbn":
        assert "Relu" not in g.ops() and "Clip" not in g.ops()
    _assert_same_function(g0, g, {"x": rand((3,) + shape[1:])}, tol=1e-4)
    assert [e["pass"] for e in ctx.log] == [p.__name__ for p in ALL]


def test_pipeline_on_mlperf_ad01_makes_one_gemm_per_layer():
    g0 = import_onnx(mlperf_model("ad01"))
    g = g0.copy()
    for p in ALL:
        g = p(g, PassContext())
        verify(g)
    assert set(g.ops()) == {"Gemm"} and len(g.nodes) == 10
    assert sum("act_min" in n.attrs for n in g.nodes) == 9
    _assert_same_function(g0, g, {g.inputs[0]: rand((4, 640))}, tol=1e-4)


def test_conv1d_bn_relu_folds_and_fuses_through_the_lifting_reshape(tmp_path):
    """Conv1d runs as a 2-D Conv plus Reshapes; BN and ReLU still fold into the Conv."""
    import torch
    from tests._onnx_builders import _randomize_bn, export_legacy

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.bn = torch.nn.Conv1d(4, 6, 3, padding=1), torch.nn.BatchNorm1d(6)
            self.fc, self.bn2 = torch.nn.Linear(6 * 10, 5), torch.nn.BatchNorm1d(5)

        def forward(self, x):
            return torch.relu(self.bn2(self.fc(torch.flatten(torch.relu(self.bn(self.c(x))), 1))))

    net = Net()
    _randomize_bn(net)
    for m in net.modules():  # _randomize_bn knows BatchNorm2d only
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_()
    g0 = import_onnx(export_legacy(net.eval(), (1, 4, 10), tmp_path / "c1d.onnx"))
    g = g0.copy()
    for p in ALL:
        g = p(g, PassContext())
        verify(g)
    assert "BatchNormalization" not in g.ops() and "Relu" not in g.ops() and "Mul" not in g.ops()
    assert len(g.meta["bn_stats"]) == 2
    _assert_same_function(g0, g, {"x": rand((3, 4, 10))})


# ---- fold_batchnorm ------------------------------------------------------------------------------

def test_fold_batchnorm_removes_bn_keeps_function_and_records_stats():
    path, shape = exported("convbn", "legacy")
    g0 = import_onnx(path)
    bns = [n for n in g0.nodes if n.op == "BatchNormalization"]
    g, ctx = _apply(g0, fold_batchnorm)
    assert "BatchNormalization" not in g.ops()
    assert ctx.log[-1]["folded"] == len(bns) and ctx.log[-1]["as_mul_add"] == 0
    _assert_same_function(g0, g, {"x": rand((2,) + shape[1:])})
    stats = g.meta["bn_stats"]
    for bn in bns:
        st = stats[bn.outputs[0]]
        assert g.producer_map()[bn.outputs[0]].op == "Conv"
        np.testing.assert_allclose(st["gamma"], g0.const(bn.inputs[1]), rtol=1e-6)
        np.testing.assert_allclose(st["var"], g0.const(bn.inputs[4]), rtol=1e-6)
        assert st["eps"] == bn.attrs["epsilon"]


def _bn_graph(after: str) -> Graph:
    """x -> (Conv | Relu) -> BN -> y; the BN is foldable only after the Conv."""
    g = Graph("bn")
    g.add_tensor(Tensor("x", (1, 2, 4, 4), "float32"))
    g.add_tensor(Tensor("h", (1, 3 if after == "Conv" else 2, 4, 4), "float32"))
    c = 3 if after == "Conv" else 2
    g.add_tensor(Tensor("y", (1, c, 4, 4), "float32"))
    if after == "Conv":
        w, b = g.add_const("w", rand((3, 2, 1, 1), 1)), g.add_const("b", rand((3,), 2))
        g.nodes.append(Node("Conv", "conv", ["x", w, b], ["h"],
                            {"strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1], "group": 1}))
    else:
        g.nodes.append(Node("Relu", "relu", ["x"], ["h"]))
    rng = np.random.default_rng(3)
    params = [g.add_const(k, v.astype(np.float32)) for k, v in (
        ("gamma", rng.uniform(0.5, 2, c)), ("beta", rng.normal(size=c)),
        ("mean", rng.normal(size=c)), ("var", rng.uniform(0.5, 2, c)))]
    g.nodes.append(Node("BatchNormalization", "bn", ["h"] + params, ["y"], {"epsilon": 1e-3}))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_bn_without_foldable_producer_becomes_mul_add():
    g0 = _bn_graph("Relu")
    g, ctx = _apply(g0, fold_batchnorm)
    assert g.ops() == ["Relu", "Mul", "Add"] and ctx.log[-1]["as_mul_add"] == 1
    _assert_same_function(g0, g, {"x": rand((2, 2, 4, 4))})


def test_bn_after_conv_with_two_readers_is_not_folded_into_it():
    g0 = _bn_graph("Conv")
    g0.outputs.append("h")  # the unnormalized conv output is also needed
    g, _ = _apply(g0, fold_batchnorm)
    assert g.ops() == ["Conv", "Mul", "Add"]
    _assert_same_function(g0, g, {"x": rand((1, 2, 4, 4))})


def test_fold_batchnorm_copies_shared_weights():
    g0 = _bn_graph("Conv")
    conv = g0.nodes[0]
    g0.add_tensor(Tensor("h2", (1, 3, 4, 4), "float32"))
    g0.nodes.insert(1, Node("Conv", "conv2", ["x"] + conv.inputs[1:], ["h2"], dict(conv.attrs)))
    g0.outputs.append("h2")
    g, _ = _apply(g0, fold_batchnorm)
    assert "BatchNormalization" not in g.ops()
    _assert_same_function(g0, g, {"x": rand((1, 2, 4, 4))})


# ---- fuse_activation ----------------------------------------------------------------------------

def _act_graph(acts: list[Node], extra_reader=False) -> Graph:
    g = Graph("act")
    g.add_tensor(Tensor("x", (1, 4), "float32"))
    w, b = g.add_const("w", rand((3, 4), 1) * 3), g.add_const("b", rand((3,), 2))
    g.add_tensor(Tensor("h", (1, 3), "float32"))
    g.nodes.append(Node("Gemm", "fc", ["x", w, b], ["h"]))
    for a in acts:
        g.add_tensor(Tensor(a.outputs[0], (1, 3), "float32"))
        g.nodes.append(a)
    g.inputs, g.outputs = ["x"], [acts[-1].outputs[0]] + (["h"] if extra_reader else [])
    return g


def test_fuse_relu_then_relu6_intersects_clamps():
    g0 = _act_graph([Node("Relu", "relu", ["h"], ["r"]),
                     Node("Clip", "relu6", ["r"], ["y"], {"min": -1.0, "max": 6.0})])
    g, ctx = _apply(g0, fuse_activation)
    assert g.ops() == ["Gemm"] and ctx.log[-1]["fused"] == 2
    assert (g.nodes[0].attrs["act_min"], g.nodes[0].attrs["act_max"]) == (0.0, 6.0)
    assert g.nodes[0].outputs == ["y"]
    _assert_same_function(g0, g, {"x": rand((16, 4), 4) * 4}, tol=0)


def test_no_fusion_when_the_unclamped_tensor_is_read_elsewhere():
    g0 = _act_graph([Node("Relu", "relu", ["h"], ["y"])], extra_reader=True)
    g, _ = _apply(g0, fuse_activation)
    assert g.ops() == ["Gemm", "Relu"]


def test_non_clamp_activations_are_not_fused():
    g0 = _act_graph([Node("Sigmoid", "sig", ["h"], ["y"])])
    g, _ = _apply(g0, fuse_activation)
    assert g.ops() == ["Gemm", "Sigmoid"]


def test_bn_stats_follow_the_layer_through_fusion():
    path, _ = exported("convbn", "legacy")
    g = fold_batchnorm(import_onnx(path), PassContext())
    n_stats = len(g.meta["bn_stats"])
    g = fuse_activation(g, PassContext())
    outs = {n.outputs[0] for n in g.nodes if n.op == "Conv"}
    assert len(g.meta["bn_stats"]) == n_stats and set(g.meta["bn_stats"]) <= outs


# ---- remove_identity, fold_constants, fold_add_into_bias ---------------------------------------

def test_remove_identity_keeps_graph_output_names():
    g0 = _act_graph([Node("Identity", "id1", ["h"], ["i1"]), Node("Relu", "relu", ["i1"], ["i2"]),
                     Node("Identity", "id2", ["i2"], ["y"])])
    g, ctx = _apply(g0, remove_identity)
    assert "Identity" not in g.ops() and g.outputs == ["y"] and ctx.log[-1]["removed"] == 2
    _assert_same_function(g0, g, {"x": rand((2, 4))}, tol=0)


def test_identity_from_input_to_output_stays():
    g = Graph("id")
    g.add_tensor(Tensor("x", (1, 2), "float32"))
    g.add_tensor(Tensor("y", (1, 2), "float32"))
    g.nodes.append(Node("Identity", "id", ["x"], ["y"]))
    g.inputs, g.outputs = ["x"], ["y"]
    g2, _ = _apply(g, remove_identity)
    assert g2.ops() == ["Identity"]


def test_fold_constants_evaluates_constant_subgraphs():
    g0 = _act_graph([Node("Add", "add", ["h", "k2"], ["y"])])
    g0.add_const("k0", np.arange(3, dtype=np.float32))
    g0.add_tensor(Tensor("k1", (3,), "float32"))
    g0.add_tensor(Tensor("k2", (3,), "float32"))
    g0.nodes.insert(0, Node("Mul", "mul", ["k0", "k0"], ["k1"]))
    g0.nodes.insert(1, Node("Relu", "relu", ["k1"], ["k2"]))
    g, ctx = _apply(g0, fold_constants)
    assert g.ops() == ["Gemm", "Add"] and ctx.log[-1]["folded"] == 2
    np.testing.assert_array_equal(g.const("k2"), [0, 1, 4])
    _assert_same_function(g0, g, {"x": rand((2, 4))}, tol=0)


def _conv_add(const_shape) -> Graph:
    g = Graph("ca")
    g.add_tensor(Tensor("x", (1, 2, 4, 4), "float32"))
    g.add_tensor(Tensor("h", (1, 3, 4, 4), "float32"))
    g.add_tensor(Tensor("y", (1, 3, 4, 4), "float32"))
    w, b = g.add_const("w", rand((3, 2, 3, 3), 1)), g.add_const("b", rand((3,), 2))
    k = g.add_const("k", rand(const_shape, 3))
    g.nodes += [Node("Conv", "conv", ["x", w, b], ["h"],
                     {"strides": [1, 1], "pads": [1] * 4, "dilations": [1, 1], "group": 1}),
                Node("Add", "add", [k, "h"], ["y"])]
    g.inputs, g.outputs = ["x"], ["y"]
    return g


@pytest.mark.parametrize("shape,folds", [((3, 1, 1), True), ((1, 3, 1, 1), True), ((1,), True),
                                         ((3, 4, 4), False), ((4,), False)])
def test_fold_add_into_bias(shape, folds):
    g0 = _conv_add(shape)
    g, _ = _apply(g0, fold_add_into_bias)
    assert g.ops() == (["Conv"] if folds else ["Conv", "Add"])
    if folds:
        assert g.nodes[0].outputs == ["y"]
    _assert_same_function(g0, g, {"x": rand((2, 2, 4, 4))})


# ---- the verifier itself ------------------------------------------------------------------------

def test_verify_catches_broken_graphs():
    g = _conv_add((3, 1, 1))
    verify(g)
    bad = g.copy()
    bad.nodes.reverse()
    with pytest.raises(AssertionError, match="topological"):
        verify(bad)
    bad = g.copy()
    bad.nodes[1].inputs[1] = "nowhere"
    with pytest.raises(AssertionError, match="never defined"):
        verify(bad)
    bad = g.copy()
    bad.tensors["w"].data = bad.tensors["w"].data[:, :1].copy()
    bad.tensors["w"].shape = bad.tensors["w"].data.shape
    with pytest.raises(AssertionError, match="does not fit"):
        verify(bad)
    bad = g.copy()
    bad.nodes[1].outputs = ["h"]
    with pytest.raises(AssertionError, match="written by two"):
        verify(bad)
    bad = g.copy()
    bad.tensors["y"].shape = (1, 3, 4, 5)
    with pytest.raises(AssertionError, match="recorded as"):
        verify(bad)
    bad = g.copy()
    bad.nodes[1].name = "conv"
    with pytest.raises(AssertionError, match="duplicate node name"):
        verify(bad)


def test_verify_wants_qparams_on_int8_activations():
    g = Graph("q")
    g.add_tensor(Tensor("x", (1, 4), "int8"))
    g.add_tensor(Tensor("y", (1, 4), "int8"))
    g.nodes.append(Node("QReshape", "r", ["x"], ["y"], {"shape": [1, 4]}, "ai.edgeq"))
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(AssertionError, match="no QParams"):
        verify(g)
    for t in g.tensors.values():
        t.q = QParams(np.array(0.1), np.array(0))
    verify(g)
