"""GRU and LSTM (issue 20): the cell unrolled over its time steps into canonical ops
(Gather, Gemm, Sigmoid, Tanh, Mul, Add), so its int8 form is ordinary QGemm / QLut / QMul /
QAdd nodes. Checked: import against onnxruntime for each attribute form (GRU: both reset
placements, an initial state, no bias; LSTM: initial h and c, Y_c), the refusals, and
Conv-GRU / Conv-LSTM keyword-spotting nets (both exporters) through `edgeq compile` for host
and tflite with `edgeq run --check`."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.errors import EdgeqError
from edgeq.importer.load import import_onnx

from ._cli_check import compile_and_check
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort

T, C, H = 5, 3, 4


def _gru_model(layout=0, bias=True, h0=False, graph_outputs=("yh",), op="GRU", c0=False, **attrs):
    rng = np.random.default_rng(layout + 2 * bias + 4 * h0 + len(attrs))
    gates = 3 if op == "GRU" else 4
    inits = {"W": rng.standard_normal((1, gates * H, C)).astype(np.float32) * 0.7,
             "R": rng.standard_normal((1, gates * H, H)).astype(np.float32) * 0.7}
    ins = ["x" if layout else "xt", "W", "R", "B" if bias else "", "", "h0" if h0 else "", "c0" if c0 else ""]
    if bias:
        inits["B"] = rng.standard_normal((1, 2 * gates * H)).astype(np.float32) * 0.3
    for name, on in (("h0", h0), ("c0", c0)):
        if on:
            inits[name] = rng.standard_normal((1, 1, H)).astype(np.float32) * 0.5
    while ins and not ins[-1]:
        ins.pop()
    if layout:
        attrs["layout"] = 1
    # layout 0 reads [T, batch, C]: the graph input (batch first) is transposed, as torch does
    nodes = [] if layout else [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])]
    outs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    nodes.append(helper.make_node(op, ins, outs, hidden_size=H, **attrs))  # y: every step
    outs = [(o, None) for o in graph_outputs]
    return make_model(nodes, [("x", [1, T, C])], outs, inits, opset=14)


@pytest.mark.parametrize("kw", [
    {"linear_before_reset": 1}, {"linear_before_reset": 0}, {"h0": True, "linear_before_reset": 1},
    {"h0": True}, {"bias": False},
])
def test_gru_matches_onnxruntime(kw):
    m = _gru_model(**kw)
    g = import_onnx(m)
    _canonical(g)
    assert {"Gemm", "Sigmoid", "Mul", "Add", "GatedState"} <= set(g.ops())
    _check_against_ort(m, g)


@pytest.mark.parametrize("kw,needle", [
    ({"direction": "bidirectional"}, "direction"),
    ({"graph_outputs": ("y", "yh")}, "output Y"),
    ({"clip": 2.0}, "clip"),
    ({"layout": 1}, "layout=1"),
])
def test_gru_refusals_name_the_node(kw, needle):
    m = _gru_model(**kw) if "direction" not in kw else None
    if m is None:  # bidirectional weights have two directions
        rng = np.random.default_rng(0)
        m = make_model([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
                        helper.make_node("GRU", ["xt", "W", "R"], ["y", "yh"], hidden_size=H, direction="bidirectional")],
                       [("x", [1, T, C])], [("yh", None)],
                       {"W": rng.standard_normal((2, 3 * H, C)).astype(np.float32),
                        "R": rng.standard_normal((2, 3 * H, H)).astype(np.float32)})
    with pytest.raises(EdgeqError, match=needle) as e:
        import_onnx(m)
    assert "GRU" in str(e.value)


def test_lstm_peepholes_are_refused():
    m = _gru_model(op="LSTM")
    g = m.graph
    g.initializer.append(helper.make_tensor("P", 1, [1, 3 * H], [0.5] * (3 * H)))
    node = g.node[-1]
    while len(node.input) < 7:
        node.input.append("")
    node.input.append("P")
    with pytest.raises(EdgeqError, match="peephole"):
        import_onnx(m)


@pytest.mark.parametrize("kw", [{}, {"h0": True, "c0": True, "graph_outputs": ("yh", "yc")}, {"bias": False}])
def test_lstm_matches_onnxruntime(kw):
    m = _gru_model(op="LSTM", **kw)
    g = import_onnx(m)
    _canonical(g)
    _check_against_ort(m, g)


@pytest.mark.parametrize("net", ["convgru", "convlstm"])
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_conv_rnn_kws_matches_onnxruntime(net, exporter):
    path, _ = exported(net, exporter)
    g = import_onnx(path)
    _canonical(g)
    _check_against_ort(str(path), g)


@pytest.mark.parametrize("net,target", [("convgru", "host"), ("convgru", "tflite"), ("convlstm", "host")])
def test_conv_rnn_kws_compiles_and_runs_bit_exact(net, target, tmp_path):
    path, shape = exported(net, "dynamo")
    compile_and_check(path, shape, target, tmp_path, seed=11)
