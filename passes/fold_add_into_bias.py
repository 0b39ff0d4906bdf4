"""fold_add_into_bias: Conv/Gemm followed by Add of a constant that is constant over
everything but the output channel -> the constant is added into the layer's bias B.

This is how TensorFlow-converted models (MatMul + Add, Conv + Add) become one layer.
The constant c must broadcast against the layer output with a single value per output
channel (axis 1): shapes like (Co,), (1, Co) for Gemm, (Co, 1, 1) / (1, Co, 1, 1) or a
scalar for Conv. The Add's output keeps its name (the layer now writes it).

Needs: canonical float graph (B always present). Run before fuse_activation (a fused
clamp between the layer and the Add blocks the fold). Breaks: nothing;
keeps graph.meta["bn_stats"] keyed by the layer's output (beta shifted by c).
"""
from __future__ import annotations

import numpy as np

from edgeq.annotations import move_bn_stats
from edgeq.ir import Graph, Node
from edgeq.ops import holds
from edgeq.passctx import PassContext


def _per_channel(c: np.ndarray, out_shape: tuple) -> np.ndarray | None:
    """c as a (Co,) vector when it is constant except along axis 1, else None."""
    co, rank = out_shape[1], len(out_shape)
    if c.ndim > rank:
        return None
    full = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, co):
        return None
    return np.broadcast_to(c.reshape(-1), (co,)) if c.size == 1 else c.reshape(co)


def fold_add_into_bias(graph: Graph, ctx: PassContext) -> Graph:
    folded = 0
    for add in [n for n in graph.nodes if n.op == "Add" and not n.domain]:
        if "act_min" in add.attrs or "act_max" in add.attrs:
            continue
        consts = [i for i in add.inputs if graph.const(i) is not None]
        if len(consts) != 1:
            continue
        x = add.inputs[0] if add.inputs[1] == consts[0] else add.inputs[1]
        layer: Node | None = graph.producer_map().get(x)
        if (layer is None or not holds("weighted", layer) or layer.domain
                or "act_min" in layer.attrs or "act_max" in layer.attrs
                or len(graph.consumer_map().get(x, [])) != 1 or x in graph.outputs):
            continue
        out_shape = graph.tensors[x].shape
        if graph.tensors[add.outputs[0]].shape != tuple(out_shape):
            continue  # the Add broadcasts the layer output to a bigger shape
        c = _per_channel(graph.const(consts[0]).astype(np.float64), out_shape)
        if c is None:
            continue
        b_name = layer.inputs[2]
        new_b = (graph.const(b_name).astype(np.float64) + c).astype(np.float32)
        if sum(i == b_name for n in graph.nodes for i in n.inputs) > 1:
            layer.inputs[2] = graph.add_const(b_name + "_add", new_b)
        else:
            graph.tensors[b_name].data = np.ascontiguousarray(new_b)
        layer.outputs = [add.outputs[0]]
        st = move_bn_stats(graph, x, add.outputs[0])
        if st is not None:  # the layer's output distribution moved by c
            st["beta"] = (np.asarray(st["beta"], np.float64) + c).tolist()
        graph.nodes.remove(add)
        del graph.tensors[x]
        folded += 1
    graph.prune()
    ctx.record("fold_add_into_bias", folded=folded)
    return graph
