"""The layers of a quantized graph as self-contained cases for per-layer kernel harnesses.

`model_layers(qgraph, feeds)` runs the integer reference once on a real input and returns,
for every node, a `Layer`: its op kind, MACs, activation inputs and reference output (NCHW,
as the graph holds them) and constant operands. The harnesses (benchmarks/mcu_harness.py)
feed each layer its real input and compare the kernel's output with `Layer.output`, so
every layer is measured on the same activations the whole model would see.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeq.reference.interpreter import run_reference
from edgeq.ir import Graph, Node


@dataclass
class Layer:
    index: int
    node: Node
    kind: str                      # "conv 3x3", "pointwise", "depthwise 3x3", "fc", "add", ...
    macs: int
    inputs: list[np.ndarray]       # activation operands (NCHW, batch first)
    consts: list[np.ndarray | None] = field(default_factory=list)  # the node's other inputs
    output: np.ndarray | None = None

    @property
    def op(self) -> str:
        return self.node.op

    def attr(self, key: str, default=None):
        return self.node.attr(key, default)


def conv_kind(node: Node, w_shape, x_shape) -> str:
    cig = w_shape[1]
    kh, kw = hw(w_shape)  # a 1-D conv's [Co, Ci/g, L] is H = 1
    group = int(node.attr("group", 1))
    if group > 1 and group == x_shape[1] and cig == 1:
        return f"depthwise {kh}x{kw}"
    if group > 1:
        return f"grouped conv {kh}x{kw}"
    if kh == kw == 1:
        strides = [int(s) for s in node.attr("strides", [1, 1])]
        return "pointwise" if max(strides) == 1 else "pointwise s2" if strides == [2, 2] else "pointwise strided"
    return f"conv {kh}x{kw}"


KINDS = {"QGemm": "fc", "QAdd": "add", "QMul": "mul", "QAvgPool": "avgpool", "QMaxPool": "maxpool",
         "QSoftmax": "softmax", "QTranspose": "transpose", "QReshape": "reshape", "QPad": "pad",
         "QConcat": "concat", "QLut": "lut", "QRequant": "requant", "QPrelu": "prelu"}


def layer_macs(node: Node, shapes: dict[str, tuple]) -> int:
    if node.op == "QConv":
        w = shapes[node.inputs[1]]
        return int(np.prod(shapes[node.outputs[0]])) * int(np.prod(w[1:]))
    if node.op == "QGemm":
        x, w = shapes[node.inputs[0]], shapes[node.inputs[1]]
        return int(x[0]) * int(np.prod(w))
    return 0


def model_layers(qgraph: Graph, feeds: dict[str, np.ndarray]) -> list[Layer]:
    """One Layer per node, with the reference activations of `feeds` (batch 1)."""
    acts = run_reference(qgraph, feeds, outputs=[n.outputs[0] for n in qgraph.nodes] + list(qgraph.inputs))
    shapes = {name: tuple(t.shape) for name, t in qgraph.tensors.items()}
    layers = []
    for i, node in enumerate(qgraph.nodes):
        ins, consts = [], []
        for name in node.inputs:
            if name and qgraph.const(name) is None:
                ins.append(acts[name])
            else:
                consts.append(qgraph.const(name) if name else None)
        if node.op == "QConv":
            kind = conv_kind(node, shapes[node.inputs[1]], shapes[node.inputs[0]])
        else:
            kind = KINDS.get(node.op, node.op)
        layers.append(Layer(i, node, kind, layer_macs(node, shapes), ins, consts, acts[node.outputs[0]]))
    return layers


def to_nhwc(a: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC ([N, C, L] -> [N, L, C], H = 1; 2-D stays)."""
    if a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    if a.ndim == 3:
        return np.ascontiguousarray(a.transpose(0, 2, 1))
    return np.ascontiguousarray(a)


def hw(shape) -> tuple[int, int]:
    """(H, W) of an [N, C, H, W] or [N, C, L] shape."""
    return (1, int(shape[2])) if len(shape) == 3 else (int(shape[2]), int(shape[3]))


def spatial(node: Node, nd: int) -> tuple[list[int], list[int], list[int]]:
    """strides (h, w), pads (top, left, bottom, right), dilations (h, w); 1-D is H = 1."""
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    pads = [int(p) for p in node.attr("pads", [0] * 2 * nd)]
    dil = [int(d) for d in node.attr("dilations", [1] * nd)]
    if nd == 1:
        return [1] + strides, [0, pads[0], 0, pads[1]], [1] + dil
    return strides, pads, dil
