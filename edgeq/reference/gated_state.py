"""QGatedState and QNarrow16: the recurrent state in int16 (docs/semantics.md).

QGatedState: G = gate_table[gate + 128], C = cand_table[cand + 128] (Q0.15), W =
cand_gate_table[cand_gate + 128], or 32768 - G without cand_gate (G >= 0 there: a sigmoid);
y = clamp(MBQM(G * state, s_mult, s_shift) + MBQM(W * C, u_mult, u_shift), -32768, 32767).
|G * state|, |W * C| <= 2^30 and both shifts are <= 0, so each term is below 2^30 and the
sum fits int32.
QNarrow16: y = clamp(y_zp + MBQM(x, mult, shift), -128, 127) (x symmetric int16)."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.ops import implements
from edgeq.reference._common import check_int32, i64, mbqm_checked, to_int8

ONE_Q15 = 1 << 15


def _lookup(table, x) -> np.ndarray:
    return i64(table)[i64(x) + 128]


@implements("reference", "QGatedState")
def qgated_state(node, state, gate, cand, gate_table, cand_table, cand_gate=None, cand_gate_table=None):
    at = node.attrs
    g = _lookup(gate_table, gate)
    what = f"{node.name} (QGatedState)"
    if cand_gate is None and g.size and g.min() < 0:  # 32768 - G must stay <= 2^15
        raise OverflowError(f"{what}: a negative gate {g.min()} for 1 - gate (a sigmoid's table is >= 0)")
    w = ONE_Q15 - g if cand_gate is None else _lookup(cand_gate_table, cand_gate)
    if int(at["s_shift"]) > 0 or int(at["u_shift"]) > 0:
        raise OverflowError(f"{what}: a multiplier >= 1 (shift > 0) could leave int32")
    y = mbqm_checked(g * i64(state), int(at["s_mult"]), int(at["s_shift"]), what) + \
        mbqm_checked(w * _lookup(cand_table, cand), int(at["u_mult"]), int(at["u_shift"]), what)
    check_int32(y, what)
    return clamp(y, -32768, 32767).astype(np.int16)


@implements("reference", "QNarrow16")
def qnarrow16(node, x):
    at = node.attrs
    y = int(at["y_zp"]) + mbqm_checked(i64(x), int(at["mult"]), int(at["shift"]), f"{node.name} (QNarrow16)")
    return to_int8(clamp(y, -128, 127))
