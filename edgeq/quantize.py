"""Float graph (docs/float_graph.md) + activation ranges -> `ai.edgeq` integer graph.

    qgraph = quantize(float_graph, ranges, weight_granularity="per-channel", weight_bits=8)

`ranges` maps every activation tensor (graph inputs included) to its calibrated
(lo, hi), as `edgeq.calibrate.calibrate` or `data_free_ranges` return it.

What comes out (docs/semantics.md is the contract):
- the same tensor names as the float graph for every activation, now int8 with QParams
  (graph inputs and outputs too); inserted tensors (QRequant outputs) get new names;
- integer constants (weights with their QParams, int32 bias / multipliers / shifts, LUTs)
  as constant inputs of the nodes;
- `graph.meta["quant_layers"][node_name]`: per-layer facts for reports (scales, weight
  ranges, accumulator bound, ...), next to the float graph's own meta notes.

The per-op rules live in edgeq/quantize_rules/ (one module per op family). Nodes are
visited in topological order, so every rule finds its inputs already quantized.
"""
from __future__ import annotations

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.quantize_rules import load_rules
from edgeq.quantize_rules.common import QuantContext

GRANULARITIES = ("per-channel", "per-tensor")


def quantize(graph_float: Graph, ranges: dict, weight_granularity: str = "per-channel",
             weight_bits: int = 8) -> Graph:
    if weight_granularity not in GRANULARITIES:
        raise EdgeqError(f"unknown weight granularity {weight_granularity!r}",
                         "use per-channel or per-tensor")
    if not isinstance(weight_bits, int) or not 2 <= weight_bits <= 8:
        raise EdgeqError(f"weight_bits must be an integer in 2..8, got {weight_bits!r}",
                         "use --weight-bits 8 (or 4)")
    rules = load_rules()
    ctx = QuantContext(graph_float, ranges, weight_granularity, weight_bits)
    for name in graph_float.inputs:
        ctx.add_act(name, ctx.act_params(name))
    for node in graph_float.nodes:
        fn = rules.get(node.op)
        if fn is None:
            raise EdgeqError(f"cannot quantize op {node.op!r} (node {node.name!r})",
                             "supported float ops: " + ", ".join(sorted(rules)) +
                             "; run the float passes first (edgeq compile does)")
        fn(ctx, node)
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
