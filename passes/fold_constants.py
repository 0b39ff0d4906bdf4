"""fold_constants: a node whose inputs are all constants is evaluated and replaced by
its result (a new constant tensor under the node's output name).

The importer already folds constant subgraphs of the ONNX file, but passes and
hand-built graphs can create new ones (e.g. a Transpose of a weight, a Mul of two
constants). Evaluation uses the float executor, so the result is exactly what the
graph would compute at run time. A graph output is never folded away (the graph must
still compute it from its inputs).

Needs: float graph. Breaks: nothing (same function).
"""
from __future__ import annotations

import numpy as np

from edgeq.floatexec.executor import run_node, to_torch
from edgeq.ir import Graph
from edgeq.passctx import PassContext


def fold_constants(graph: Graph, ctx: PassContext) -> Graph:
    import torch
    folded = []
    for node in list(graph.nodes):
        if node.domain or not node.inputs or node.outputs[0] in graph.outputs:
            continue
        if not all(i and graph.const(i) is not None for i in node.inputs):
            continue
        with torch.inference_mode():
            out = run_node(node, [to_torch(graph.const(i)) for i in node.inputs], graph)
        data = np.ascontiguousarray(out.numpy().astype(np.float32))
        t = graph.tensors[node.outputs[0]]
        t.data, t.shape, t.dtype = data, tuple(data.shape), data.dtype.name
        graph.nodes.remove(node)
        folded.append(node.name)
    graph.prune()
    ctx.record("fold_constants", folded=len(folded))
    return graph
