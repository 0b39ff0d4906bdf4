"""expand_gated_state: GatedState -> Sigmoid, Tanh, Mul and Add, for an int8 recurrent state.

The importer writes each recurrent state update as one GatedState node (reading the gates'
pre-activations) so the quantizer can compute the gates and carry the state in int16
(quantization/rules/recurrent.py). A build whose state stays int8 (`state_bits=8`: the
TFLite targets, whose export has no int16 state, or a comparison) runs this pass first, so
calibration and quantization see ordinary float ops, g = sigmoid(gate), n = tanh(cand):
    LSTM  y = g * state + sigmoid(cand_gate) * n  -> Add(Mul(g, state), Mul(Sigmoid(cand_gate), n))
    GRU   y = g * state + (1 - g) * n             -> Add(n, Mul(g, Add(Mul(n, -1), state)))
(the GRU form needs no constant 1 - g: the nodes the importer wrote before GatedState).

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

        gate, cand = emit("Sigmoid", [gate], "gate"), emit("Tanh", [cand], "cand")
        if len(node.inputs) > 3 and node.inputs[3]:
            kept = emit("Mul", [gate, state], "kept")
            new = emit("Mul", [emit("Sigmoid", [node.inputs[3]], "cand_gate"), cand], "new")
            emit("Add", [kept, new], "sum", y)
        else:
            neg = emit("Mul", [cand, graph.add_const(f"{node.name}/minus_one", np.array(-1.0, np.float32))], "neg")
            diff = emit("Add", [neg, state], "diff")
            emit("Add", [cand, emit("Mul", [gate, diff], "gated")], "sum", y)
    graph.nodes = out
    ctx.record("expand_gated_state", expanded=expanded)
    return graph
