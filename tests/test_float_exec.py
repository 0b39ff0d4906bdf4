"""run_float and FloatModule: batching, intermediate tensors, fused clamps, autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeq.floatexec.executor import FloatModule, run_float
from edgeq.ir import Graph, Node, Tensor
from edgeq.importer.load import import_onnx
from edgeq.passctx import PassContext
from edgeq.passes.fold_batchnorm import fold_batchnorm
from edgeq.passes.fuse_activation import fuse_activation
from tests._onnx_builders import exported, rand
from tests.conftest import mlperf_model


def _convbn():
    path, shape = exported("convbn", "legacy")
    return import_onnx(path), shape


def test_batch_equals_per_sample_runs():
    g, shape = _convbn()
    x = rand((5,) + shape[1:])
    batched = run_float(g, {"x": x})["y"]
    single = np.concatenate([run_float(g, {"x": x[i:i + 1]})["y"] for i in range(5)])
    assert batched.shape == (5, 10)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)


def test_batched_reshape_keeps_batch_on_mlperf_kws():
    """kws01 reshapes its NHWC input and flattens before the dense layer."""
    g = import_onnx(mlperf_model("kws01"))
    x = rand((4,) + g.tensors[g.inputs[0]].shape[1:])
    out = run_float(g, {g.inputs[0]: x})[g.outputs[0]]
    assert out.shape == (4, 12)
    ref = run_float(g, {g.inputs[0]: x[2:3]})[g.outputs[0]]
    np.testing.assert_allclose(out[2:3], ref, rtol=1e-5, atol=1e-6)


def test_any_tensor_can_be_requested():
    g, shape = _convbn()
    names = [n.outputs[0] for n in g.nodes] + ["x", g.nodes[0].inputs[1]]
    res = run_float(g, {"x": rand((2,) + shape[1:])}, names)
    assert set(res) == set(names)
    for n in g.nodes:
        assert res[n.outputs[0]].shape[1:] == g.tensors[n.outputs[0]].shape[1:]
        assert res[n.outputs[0]].dtype == np.float32
    np.testing.assert_array_equal(res[g.nodes[0].inputs[1]], g.const(g.nodes[0].inputs[1]))


def test_feed_shape_is_checked():
    g, shape = _convbn()
    with pytest.raises(ValueError, match="any batch"):
        run_float(g, {"x": rand((1, 3, 8, 8))})
    with pytest.raises(KeyError):
        run_float(g, {})


def _conv_graph(act=None) -> Graph:
    g = Graph("c")
    g.add_tensor(Tensor("x", (1, 2, 5, 5), "float32"))
    g.add_tensor(Tensor("y", (1, 3, 5, 5), "float32"))
    w = g.add_const("w", rand((3, 2, 3, 3), 1))
    b = g.add_const("b", rand((3,), 2))
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1}
    if act:
        attrs.update(act_min=act[0], act_max=act[1])
    g.nodes.append(Node("Conv", "conv", ["x", w, b], ["y"], attrs))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_fused_clamp_is_honored():
    x = {"x": rand((3, 2, 5, 5), 3) * 3}
    raw = run_float(_conv_graph(), x)["y"]
    assert raw.min() < 0 and raw.max() > 0.5
    np.testing.assert_allclose(run_float(_conv_graph((0.0, 0.5)), x)["y"], np.clip(raw, 0, 0.5), rtol=1e-6)
    np.testing.assert_allclose(run_float(_conv_graph((-np.inf, 0.25)), x)["y"], np.minimum(raw, 0.25), rtol=1e-6)


def test_float_module_matches_and_has_gradients():
    g, shape = _convbn()
    g = fuse_activation(fold_batchnorm(g, PassContext()), PassContext())
    mod = FloatModule(g)
    x = rand((2,) + shape[1:])
    y = mod(torch.from_numpy(x))
    np.testing.assert_allclose(y.detach().numpy(), run_float(g, {"x": x})["y"], rtol=1e-5, atol=1e-6)
    params = dict(mod.named_parameters())
    n_layers = sum(n.op in ("Conv", "Gemm") for n in g.nodes)
    assert len(params) == 2 * n_layers  # W and B of every layer
    y.square().sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in params.values())
    # Gradient with respect to the input too (Hessian traces need it).
    xt = torch.from_numpy(x).requires_grad_()
    mod(xt).sum().backward()
    assert xt.grad is not None and xt.grad.shape == xt.shape


def test_float_module_intermediates_and_write_back():
    g = _conv_graph((0.0, np.inf))
    mod = FloatModule(g)
    res = mod.run({"x": torch.from_numpy(rand((1, 2, 5, 5)))}, ["y", "b"])
    assert set(res) == {"y", "b"}
    with torch.no_grad():
        for p in mod.parameters():
            p.mul_(2)
    assert np.array_equal(g.const("w"), _conv_graph().const("w"))  # copies until written back
    mod.write_back()
    np.testing.assert_allclose(g.const("w"), 2 * _conv_graph().const("w"))
    assert g.const("w").dtype == np.float32


UNARY_ATTRS = {"Relu": {}, "Clip": {"min": 0.0, "max": 6.0}, "Sigmoid": {}, "Tanh": {}, "HardSwish": {},
               "HardSigmoid": {"alpha": 0.2, "beta": 0.5}, "LeakyRelu": {"alpha": 0.1}}


@pytest.mark.parametrize("op", sorted(UNARY_ATTRS))
def test_torch_executor_agrees_with_the_declared_float_math(op):
    """Each unary op's float math is written once, in its declaration (edgeq/ops/float_ops.py),
    and the LUT builder tabulates that; the torch executor (float passes, calibration) must
    compute the same function: checked on a dense grid across and beyond every kink."""
    from edgeq.ops import FLOAT_OPS, float_fn
    assert set(UNARY_ATTRS) == {n for n, d in FLOAT_OPS.items() if d.float_fn is not None}
    x = np.linspace(-10.0, 10.0, 40001, dtype=np.float32)  # step 5e-4: hits -3, 0, 3 exactly
    g = Graph("unary")
    g.add_tensor(Tensor("x", (1, x.size), "float32"))
    g.add_tensor(Tensor("y", (1, x.size), "float32"))
    g.inputs, g.outputs = ["x"], ["y"]
    node = Node(op, "f", ["x"], ["y"], UNARY_ATTRS[op])
    g.nodes.append(node)
    got = run_float(g, {"x": x[None]})["y"][0].astype(np.float64)
    want = float_fn(node)(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
