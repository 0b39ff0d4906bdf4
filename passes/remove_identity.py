"""remove_identity: delete Identity nodes (Dropout imports as Identity).

Readers of the Identity's output read its input instead. When the output is a graph
output, the producer writes that name instead (graph output names are the user's API,
so they must survive); if the input is itself a graph input or another graph output,
the Identity stays, since two names for one tensor are then both required.

Needs: nothing. Breaks: nothing (same function, fewer nodes). Run early: Identity
hides Conv -> BN and Conv -> Relu pairs from fold_batchnorm and fuse_activation.
"""
from __future__ import annotations

from edgeq.ir import Graph
from edgeq.passctx import PassContext


def remove_identity(graph: Graph, ctx: PassContext) -> Graph:
    removed = 0
    for node in [n for n in graph.nodes if n.op == "Identity" and not n.domain]:
        src, dst = node.inputs[0], node.outputs[0]
        if dst not in graph.outputs:
            graph.nodes.remove(node)
            graph.replace_uses(dst, src)
            graph.tensors.pop(dst, None)
            removed += 1
            continue
        prod = graph.producer_map().get(src)
        if prod is None or src in graph.outputs:
            continue  # src is a graph input / constant or is needed under both names
        # The producer writes the graph output's name; src's other readers follow.
        graph.nodes.remove(node)
        prod.outputs = [dst if o == src else o for o in prod.outputs]
        for n in graph.nodes:
            n.inputs = [dst if i == src else i for i in n.inputs]
        t = graph.tensors.pop(src)
        graph.tensors[dst].shape = t.shape
        removed += 1
    ctx.record("remove_identity", removed=removed)
    return graph
