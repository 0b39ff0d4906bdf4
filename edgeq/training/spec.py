"""Training specs: which parameters a training step updates.

    bias      every QConv/QGemm bias (backward runs through the whole network)
    last:N    weights and biases of the last N weighted layers (QConv/QGemm, graph order)
    auto      chosen under a memory budget (edgeq.training.auto.select)

A spec resolves to a list of `LayerUpdate`s, one per layer that moves; `channels` narrows
a weight update to some input channels (a depthwise layer's channels), the sparse update
of MCUNetV3: only those input channels' activations are kept for the weight gradient.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node

WEIGHTED = ("QConv", "QGemm")
SPEC_FIX = "use --train bias, --train last:N (N >= 1) or --train auto"


@dataclass(frozen=True)
class LayerUpdate:
    node: str
    bias: bool = True
    weights: bool = False
    channels: tuple[int, ...] | None = None  # input channels whose weights move; None: all


def weighted_layers(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in WEIGHTED]


def input_channels(graph: Graph, node: Node) -> int:
    """Channels of the input a weight update selects from (features for QGemm)."""
    w = graph.const(node.inputs[1])
    return int(w.shape[1]) * (int(node.attr("group", 1)) if node.op == "QConv" else 1)


def resolve(spec, graph: Graph) -> list[LayerUpdate]:
    """`bias`, `last:N` or a list of LayerUpdate -> a checked list of LayerUpdate."""
    layers = weighted_layers(graph)
    if not layers:
        raise EdgeqError("the model has no QConv/QGemm layer to train", "train a model with Conv or Gemm layers")
    if isinstance(spec, str):
        text = spec.strip()
        if text == "bias":
            return [LayerUpdate(n.name, bias=True) for n in layers]
        m = re.fullmatch(r"last:(\d+)", text)
        if m and int(m.group(1)) >= 1:
            n = int(m.group(1))
            if n > len(layers):
                raise EdgeqError(f"--train last:{n} asks for {n} layers, the model has {len(layers)}",
                                 f"use last:N with N <= {len(layers)}")
            return [LayerUpdate(l.name, bias=True, weights=True) for l in layers[-n:]]
        if text == "auto":
            raise EdgeqError("--train auto needs a memory budget and sample data",
                             "call edgeq.training.auto.select(...) and pass its result")
        raise EdgeqError(f"unknown training spec {spec!r}", SPEC_FIX)
    by_name = {n.name: n for n in layers}
    out = []
    for u in spec:
        node = by_name.get(u.node)
        if node is None:
            raise EdgeqError(f"training spec names {u.node!r}, which is not a QConv/QGemm layer",
                             "name layers from the quantized graph")
        if u.channels is not None:
            ci = input_channels(graph, node)
            if not u.channels or min(u.channels) < 0 or max(u.channels) >= ci or len(set(u.channels)) != len(u.channels):
                raise EdgeqError(f"{u.node}: channels {list(u.channels)[:8]} not distinct values in [0, {ci})",
                                 "select input channels of that layer")
            u = LayerUpdate(u.node, u.bias, u.weights, tuple(sorted(u.channels)))
        if u.bias or u.weights:
            out.append(u)
    if not out:
        raise EdgeqError("the training spec updates nothing", SPEC_FIX)
    return out
