"""fuse_activation: Relu / Clip (Relu6) folded into the Conv, Gemm, Add or Mul before it
(the ops declared clamp_fusable: they apply an output clamp themselves).

The producer gets `act_min`/`act_max` (floats, -inf/inf for an open side; repeated
fusions intersect) and writes the activation's output tensor; the activation node goes.
This is where the integer kernels apply their output clamp (docs/semantics.md), so a
fused ReLU costs nothing at run time and its range is known to calibration.

A Reshape between producer and activation does not block the fusion (the clamp is
elementwise); the Reshape then writes the activation's output.

Fused only when the producer's output has exactly one reader (the activation) and is
not a graph output: otherwise someone still needs the unclamped tensor.

Needs: canonical float graph; run after fold_batchnorm (Conv -> BN -> Relu must become
Conv -> Relu first) and remove_identity.
Keeps graph.meta["bn_stats"] keyed by the layer's (new) output name.
Breaks: nothing; the graph computes the same function. Passes that look for Relu nodes
must read act_min/act_max instead.
"""
from __future__ import annotations

from edgeq.annotations import move_bn_stats
from edgeq.ir import Graph
from edgeq.ops import clamp_of, holds
from edgeq.passctx import PassContext

INF = float("inf")


def _single_reader(graph: Graph, name: str) -> bool:
    return len(graph.consumer_map().get(name, [])) == 1 and name not in graph.outputs


def fuse_activation(graph: Graph, ctx: PassContext) -> Graph:
    fused = 0
    for act in list(graph.nodes):
        bounds = clamp_of(act)
        if bounds is None:
            continue
        prod = graph.producer_map().get(act.inputs[0])
        via = None
        if prod is not None and prod.op == "Reshape" and _single_reader(graph, prod.outputs[0]):
            # A clamp is elementwise, so it commutes with a Reshape (the importer's 1-D
            # lifting puts one after every 1-D conv).
            via, prod = prod, graph.producer_map().get(prod.inputs[0])
        if prod is None or not holds("clamp_fusable", prod):
            continue
        mid = prod.outputs[0]
        if not _single_reader(graph, mid):
            continue
        lo = max(float(prod.attrs.get("act_min", -INF)), bounds[0])
        hi = min(float(prod.attrs.get("act_max", INF)), bounds[1])
        prod.attrs["act_min"], prod.attrs["act_max"] = lo, hi
        writer = via or prod  # now writes the activation's output tensor
        dropped = writer.outputs[0]
        writer.outputs = [act.outputs[0]]
        if via is None:  # BN statistics follow the layer (pre-clamp output)
            move_bn_stats(graph, mid, act.outputs[0])
        graph.nodes.remove(act)
        del graph.tensors[dropped]
        fused += 1
    ctx.record("fuse_activation", fused=fused)
    return graph
