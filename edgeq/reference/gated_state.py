"""QGatedState and QNarrow16: the recurrent state in int16 (docs/semantics.md).

QGatedState: a = (gate - gate_zp) * state, b = w * (cand - cand_zp) with
w = cand_gate - cand_gate_zp, or one - (gate - gate_zp) without cand_gate;
y = clamp(MBQM(a, s_mult, s_shift) + MBQM(b, u_mult, u_shift), -32768, 32767) as int16.
QNarrow16: y = clamp(y_zp + MBQM(x, mult, shift), -128, 127) (x symmetric int16)."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.ops import implements
from edgeq.reference._common import check_int32, i64, mbqm_checked, to_int8


@implements("reference", "QGatedState")
def qgated_state(node, state, gate, cand, cand_gate=None):
    at = node.attrs
    g = i64(gate) - int(at["gate_zp"])
    w = int(at["one"]) - g if cand_gate is None else i64(cand_gate) - int(at.get("cand_gate_zp", 0))
    what = f"{node.name} (QGatedState)"
    y = mbqm_checked(g * i64(state), int(at["s_mult"]), int(at["s_shift"]), what) + \
        mbqm_checked(w * (i64(cand) - int(at["cand_zp"])), int(at["u_mult"]), int(at["u_shift"]), what)
    check_int32(y, what)
    return clamp(y, -32768, 32767).astype(np.int16)


@implements("reference", "QNarrow16")
def qnarrow16(node, x):
    at = node.attrs
    y = int(at["y_zp"]) + mbqm_checked(i64(x), int(at["mult"]), int(at["shift"]), f"{node.name} (QNarrow16)")
    return to_int8(clamp(y, -128, 127))
