"""Single-op quantized graphs and a backward context for the training-rule tests: each
builder returns a Graph with QParams on every tensor (what the rules' compile-time half
reads) and the node, so a test can run one rule on a chosen output gradient."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from edgeq import fixedpoint as fp
from edgeq.reference import load_all, run_node
from edgeq.ir import QDOMAIN, Graph, Node, QParams, Tensor
from edgeq.training.plan import RuleInfo, TrainOptions, TrainPlan
from edgeq.training.rules import load_rules
from edgeq.training.step import Backward, TrainState

load_all()


def act(graph: Graph, name: str, shape, scale: float, zp: int) -> str:
    graph.add_tensor(Tensor(name, tuple(shape), "int8", None, QParams(np.float64(scale), np.int64(zp))))
    return name


def rand_i8(rng, shape, lo=-128, hi=127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def conv_graph(rng, ci=4, co=6, hw=(7, 6), k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dil=(1, 1),
               group=1, relu=True, gemm=False):
    """x -> QConv (or QGemm) -> y with per-channel weight scales spread over 4x."""
    g = Graph("t")
    s_x, z_x = 0.03, -20
    s_w = 0.004 * np.exp(rng.uniform(-0.7, 0.7, size=co))
    if gemm:
        x_shape, w_shape = (1, ci), (co, ci)
    else:
        x_shape, w_shape = (1, ci) + tuple(hw), (co, ci // group) + tuple(k)
    x = act(g, "x", x_shape, s_x, z_x)
    w = rng.integers(-127, 128, size=w_shape).astype(np.int8)
    wn = g.add_const("w", w, QParams(s_w, np.zeros(co, np.int64), axis=0))
    bias = rng.integers(-3000, 3000, size=co).astype(np.int32)
    bn = g.add_const("b", bias)
    s_y, z_y = 0.05, (-128 if relu else 3)
    mult, shift = fp.quantize_multiplier_array(s_x * s_w / s_y)
    mn, sn = g.add_const("m", mult), g.add_const("s", shift)
    attrs = {"x_zp": z_x, "y_zp": z_y, "act_min": -128, "act_max": 127}
    if not gemm:
        attrs = {"strides": list(stride), "pads": list(pads), "dilations": list(dil), "group": group, **attrs}
    node = Node("QGemm" if gemm else "QConv", "layer", [x, wn, bn, mn, sn], ["y"], attrs, QDOMAIN)
    xv = rand_i8(rng, x_shape)
    yv = run_node(node, [xv, w, bias, mult, shift])
    act(g, "y", yv.shape, s_y, z_y)
    g.nodes, g.inputs, g.outputs = [node], [x], ["y"]
    return g, node, {"x": xv, "y": yv}


def context(graph: Graph, node: Node, env: dict, wants, update=None, options=None) -> Backward:
    """A Backward context for one node, its compile-time constants prepared as build_plan
    would (with `wants` chosen by the test instead of derived from the spec)."""
    options = options or TrainOptions()
    wants = tuple(wants)
    consts = load_rules()[node.op].prepare(node, RuleInfo(graph, wants, update, options))
    plan = TrainPlan(graph, {update.node: update} if update else {}, options, node.outputs[0], {},
                     [node], [node], {node.name: wants}, {node.name: consts}, list(consts.get("keep", [])))
    return Backward(plan, TrainState(plan), env)


def real(graph: Graph, name: str, value) -> torch.Tensor:
    """The dequantized value of an int8 activation or constant, float64, requiring grad."""
    q = graph.tensors[name].q
    shape = [1] * np.ndim(value)
    if q.axis is not None:
        shape[q.axis] = -1
    s = np.asarray(q.scale, np.float64).reshape(shape if q.axis is not None else ())
    z = np.asarray(q.zero_point, np.int64).reshape(shape if q.axis is not None else ())
    return torch.tensor((np.asarray(value, np.int64) - z) * s, dtype=torch.float64, requires_grad=True)


@lru_cache(maxsize=1)
def small_net():
    """ConvBnNet (conv, depthwise, pointwise, residual add, avgpool, flatten, gemm) compiled
    for the reference target once per session, with 12 int8 samples and random labels."""
    import tempfile
    from pathlib import Path

    import edgeq
    from edgeq.reference.interpreter import quantize_inputs
    from tests._onnx_builders import ConvBnNet, export_legacy

    with tempfile.TemporaryDirectory() as d:
        path = export_legacy(ConvBnNet(), (1, 3, 16, 16), Path(d) / "net.onnx")
        rng = np.random.default_rng(0)
        calib = rng.standard_normal((48, 3, 16, 16)).astype(np.float32)
        qgraph = edgeq.compile(str(path), target="reference", calib=calib).qgraph
    x = quantize_inputs(qgraph, {qgraph.inputs[0]: calib[:12]})[qgraph.inputs[0]]
    return qgraph, x, rng.integers(0, 10, size=12)
