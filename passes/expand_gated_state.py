"""expand_gated_state: GatedState -> Mul and Add, for an int8 recurrent state.

The importer writes each recurrent state update as one GatedState node so the quantizer
can carry the state in int16 (quantization/rules/recurrent.py). A build whose state stays
int8 (`state_bits=8`: the TFLite targets, whose export has no int16 state, or a comparison)
runs this pass first, so calibration and quantization see ordinary float ops:
    LSTM  y = gate * state + cand_gate * cand      -> Add(Mul(gate, state), Mul(cand_gate, cand))
    GRU   y = gate * state + (1 - gate) * cand     -> Add(cand, Mul(gate, Add(state, Mul(cand, -1))))
(the GRU form needs no constant 1 - gate: the same nodes the importer wrote before GatedState).

Needs: nothing. Breaks: nothing (same function). Run first: the later passes and
calibration must see the nodes that will be quantized.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, Node, Tensor
from edgeq.passctx import PassContext


def expand_gated_state(graph: Graph, ctx: PassContext) -> Graph:
    out: list[Node] = []
    expanded = 0
    for node in graph.nodes:
        if node.op != "GatedState" or node.domain:
            out.append(node)
            continue
        expanded += 1
        state, gate, cand = node.inputs[:3]
        y = node.outputs[0]
        shape = graph.tensors[y].shape

        def emit(op: str, ins: list[str], what: str, name: str | None = None) -> str:
            t = name or graph.unique_name(f"{y}/{what}")
            if name is None:
                graph.add_tensor(Tensor(t, shape, "float32"))
            out.append(Node(op, f"{node.name}/{what}", ins, [t], {}))
            return t

        if len(node.inputs) > 3 and node.inputs[3]:
            kept = emit("Mul", [gate, state], "kept")
            emit("Add", [kept, emit("Mul", [node.inputs[3], cand], "new")], "sum", y)
        else:
            neg = emit("Mul", [cand, graph.add_const(f"{node.name}/minus_one", np.array(-1.0, np.float32))], "neg")
            diff = emit("Add", [neg, state], "diff")
            emit("Add", [cand, emit("Mul", [gate, diff], "gated")], "sum", y)
    graph.nodes = out
    ctx.record("expand_gated_state", expanded=expanded)
    return graph
