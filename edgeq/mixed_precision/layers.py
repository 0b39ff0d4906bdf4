"""The layers a bit-width plan is about: every Conv/Gemm of the float graph (after the
float passes, so the names are the ones `quantize(weight_bits={...})` takes).

Weight bytes are what the C generator stores: int8 one byte per weight, bits <= 4 packed
two per byte (docs/semantics.md). Biases (int32) and per-channel multipliers do not depend
on the bit-width, so they are left out of every budget here.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeq.ir import Graph
from edgeq.ops import holds, macs


@dataclass(frozen=True)
class Layer:
    name: str          # float-graph node name
    weight: str        # name of its weight constant
    params: int        # number of weights
    macs: int          # multiply-accumulates per inference (batch 1)

    def weight_bytes(self, bits: int) -> int:
        # packed storage: ceil(params * bits / 8); int4 two per byte
        return (self.params * bits + 7) // 8


def weighted_layers(graph: Graph) -> list[Layer]:
    """Conv/Gemm nodes (the weighted float ops) with constant weights, in graph order."""
    layers = []
    for n in graph.nodes:
        if holds("weighted", n) and not n.domain and graph.const(n.inputs[1]) is not None:
            layers.append(Layer(n.name, n.inputs[1], int(graph.const(n.inputs[1]).size), macs(n, graph)))
    return layers


def total_weight_bytes(layers: list[Layer], bits: dict[str, int] | int) -> int:
    get = (lambda l: bits) if isinstance(bits, int) else (lambda l: bits.get(l.name, 8))
    return sum(l.weight_bytes(get(l)) for l in layers)
