"""Float graph (docs/float_graph.md) + activation ranges -> `ai.edgeq` integer graph.

    qgraph = quantize(float_graph, ranges, weight_granularity="per-channel", weight_bits=8)
    qgraph = quantize(float_graph, ranges, weight_bits={"conv1": 4, "fc": 8})  # per layer

`weight_bits`: one int for every Conv/Gemm, or a dict {float-graph node name: bits} (the
layers it does not name get 8; naming a node that is not a Conv/Gemm of the graph is an
error, so a stale plan cannot pass silently). Bits are in 2..8; weights are symmetric with
qmax = 2^(bits-1) - 1 (int4: [-7, 7]) and stored as int8 arrays whose QParams.bits says
how many bits they use (the C generator packs bits <= 4 two per byte).

`ranges` maps every activation tensor (graph inputs included) to its calibrated
(lo, hi), as `edgeq.calibration.calibrate.calibrate` or `data_free_ranges` return it.

What comes out (docs/semantics.md is the contract):
- the same tensor names as the float graph for every activation, now int8 with QParams
  (graph inputs and outputs too); inserted tensors (QRequant outputs) get new names;
- integer constants (weights with their QParams, int32 bias / multipliers / shifts, LUTs)
  as constant inputs of the nodes;
- `graph.meta["quant_layers"][node_name]`: per-layer facts for reports (scales, weight
  ranges, accumulator bound, ...), next to the float graph's own meta notes.

The per-op rules live in edgeq/quantization/rules/ (one module per op family). Nodes are
visited in topological order, so every rule finds its inputs already quantized.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.ops import holds, lookup
from edgeq.options import GRANULARITIES
from edgeq.quantization import rules  # noqa: F401  (registers the quantize stage)
from edgeq.quantization.rules.common import QuantContext

DEFAULT_BITS = 8


def _check_bits(bits, what: str) -> int:
    # bool is an int subclass: True must not mean 1 bit
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise EdgeqError(f"weight_bits{what} must be an integer in 2..8, got {bits!r}",
                         "use --weight-bits 8 or 4, or a dict {layer name: 4 or 8}")
    return int(bits)


def weight_bits_per_layer(graph_float: Graph, weight_bits: int | dict) -> dict[str, int]:
    """{Conv/Gemm node name: bits} for every weighted layer of the float graph."""
    names = [n.name for n in graph_float.nodes if holds("weighted", n)]
    if isinstance(weight_bits, dict):
        unknown = sorted(set(weight_bits) - set(names))
        if unknown:
            raise EdgeqError(f"weight_bits names {unknown} which are not Conv/Gemm nodes of the "
                             f"float graph {graph_float.name!r}",
                             "key the dict by the float graph's node names (after the float "
                             "passes), e.g. " + ", ".join(names[:4]))
        checked = {k: _check_bits(v, f"[{k!r}]") for k, v in weight_bits.items()}
        return {n: checked.get(n, DEFAULT_BITS) for n in names}
    bits = _check_bits(weight_bits, "")
    return {n: bits for n in names}


def quantize(graph_float: Graph, ranges: dict, weight_granularity: str = "per-channel",
             weight_bits: int | dict = 8) -> Graph:
    if weight_granularity not in GRANULARITIES:  # the Python API's edge (CompileOptions checked it too)
        raise EdgeqError(f"unknown weight granularity {weight_granularity!r}",
                         "use per-channel or per-tensor")
    layer_bits = weight_bits_per_layer(graph_float, weight_bits)
    if isinstance(weight_bits, dict):  # a JSON-friendly copy for meta and reports
        weight_bits = {str(k): int(v) for k, v in weight_bits.items()}
    ctx = QuantContext(graph_float, ranges, weight_granularity, weight_bits, layer_bits)
    for name in graph_float.inputs:
        ctx.add_act(name, ctx.act_params(name))
    for node in graph_float.nodes:
        lookup("quantize", node.op, node.name).fn(ctx, node)
        q = ctx.out.tensors[node.outputs[0]].q
        ctx.record(node.name, op=node.op, out_scale=float(q.scale), out_zero_point=int(q.zero_point))
    out = ctx.out
    out.inputs = list(graph_float.inputs)
    out.outputs = list(graph_float.outputs)
    for name in out.outputs:
        if out.tensors.get(name) is None or out.tensors[name].q is None:
            raise EdgeqError(f"graph output {name!r} was not produced by a quantized node",
                             "make the output an activation of the graph")
    return out
