"""The C emitters of the int16 recurrent state (QGatedState, QNarrow16; docs/semantics.md):
portable kernels in runtime_c/src/eq_gated_state_s16.c and eq_narrow_s16_s8.c. The arena
is int8_t, so an int16 tensor's buffer is cast (the planner aligns every buffer to ALIGN
bytes, a multiple of 2); a constant initial state and the gate tables are
`static const int16_t` arrays."""
from __future__ import annotations

import numpy as np

from edgeq.codegen.kernels import CKernel
from edgeq.codegen.ops import Call
from edgeq.ir import Node
from edgeq.ops import implements


def _s16(c, tensor: str) -> str:
    if c.graph.const(tensor) is not None:
        return c.const(tensor, "int16", "state")
    return f"(int16_t *)(void *)({c.buf(tensor)})"


def _size(c, tensor: str) -> int:
    return int(np.prod(c.shape(tensor), dtype=np.int64))


@implements("c", "QGatedState", kernel=CKernel("eq_gated_state_s16"))
def gated_state(c, n: Node, k: CKernel) -> Call:
    state, gate, cand, gate_table, cand_table = n.inputs[:5]
    cand_gate = n.inputs[5:7] if len(n.inputs) > 6 and n.inputs[5] else None
    fields = {"size": _size(c, n.outputs[0]),
              **{key: int(n.attr(key)) for key in ("s_mult", "s_shift", "u_mult", "u_shift")}}
    tables = [c.const(gate_table, "int16", "gate_table"), c.const(cand_table, "int16", "cand_table")]
    rest = [c.buf(cand_gate[0]), c.const(cand_gate[1], "int16", "cand_gate_table")] if cand_gate else ["NULL", "NULL"]
    return Call(k.function, [_s16(c, state), c.buf(gate), c.buf(cand), *tables, *rest, _s16(c, n.outputs[0])],
                "eq_gated_state_params", fields)


@implements("c", "QNarrow16", kernel=CKernel("eq_narrow_s16_s8"))
def narrow16(c, n: Node, k: CKernel) -> Call:
    fields = {"size": _size(c, n.inputs[0]), "y_zp": int(n.attr("y_zp")), "mult": int(n.attr("mult")),
              "shift": int(n.attr("shift"))}
    return Call(k.function, [_s16(c, n.inputs[0]), c.buf(n.outputs[0])], "eq_narrow_params", fields)
