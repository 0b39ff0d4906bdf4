"""GatedState -> QGatedState (+ QNarrow16): the recurrent state carried in int16.

    y = gate * state + w * cand,   w = cand_gate, or 1 - gate (GRU)

The state a cell carries from step to step is where int8 rounding compounds, so it is
held as a symmetric int16 tensor (zero point 0, scale = max(|lo|, |hi|) / 32767 of its
calibrated range, rounded to float32); the gates and the candidate stay int8. The int16
tensor gets the name `<state>/s16`; the float tensor's own name becomes its int8 copy
(QNarrow16, the calibrated int8 parameters), which every other reader (the recurrent
Gemms, r * h, tanh(c), the graph output) reads as before. The next step's GatedState reads
the int16 tensor (`ctx.wide`).

Bounds (docs/semantics.md): |gate - gate_zp| <= 255 and |state| <= 2^15, so the state
product is below 2^23 and the candidate product below 2^16; with s_shift <= 6 and u_shift
<= 14 both MBQM inputs stay in int32 after the left shift and each rescaled term is below
2^30, so their sum fits int32 before the int16 saturation.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import QParams, Tensor
from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext, scalar
from edgeq.quantization.rules.multipliers import f32, mul_multiplier, requant_multiplier

STATE_BITS = 16
S_SHIFT_MAX, U_SHIFT_MAX = 6, 14


def state_qparams(lo: float, hi: float) -> QParams:
    """Symmetric int16: scale = max(|lo|, |hi|) / 32767 (an all-zero range gets 1 / 32767)."""
    m = max(abs(float(lo)), abs(float(hi)))
    if not math.isfinite(m):
        raise EdgeqError(f"recurrent state range ({lo}, {hi}) is not finite",
                         "check the calibration data for NaN/inf")
    scale = f32((m if m > 0 else 1.0) / 32767.0)
    return QParams(np.float64(scale), np.int64(0), bits=STATE_BITS)


def _state_input(ctx: QuantContext, name: str) -> str:
    if name in ctx.wide:
        return ctx.wide[name]
    data = ctx.fconst(name)
    if data is None:  # only a GatedState writes a state, so this is a graph built by hand
        raise EdgeqError(f"GatedState reads {name!r}, which is neither a constant initial state nor "
                         "another GatedState's output", "build recurrent cells with edgeq's importer")
    q = state_qparams(float(np.min(data)), float(np.max(data)))
    return ctx.add_const(f"{name}_q16", q.quantize(data).astype(np.int16), q)


@implements("quantize", "GatedState", emits=("QGatedState", "QNarrow16"))
def quantize_gated_state(ctx: QuantContext, node) -> None:
    state = _state_input(ctx, node.inputs[0])
    gate, cand = (ctx.int8_input(i) for i in node.inputs[1:3])
    cand_gate = ctx.int8_input(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    qs, qg, qc = ctx.qp(state), ctx.qp(gate), ctx.qp(cand)
    out = node.outputs[0]
    lo, hi = ctx.range_of(out)
    qy = state_qparams(lo, hi)
    sy = scalar(qy.scale)
    attrs = {"gate_zp": int(qg.zero_point), "cand_zp": int(qc.zero_point)}
    s_mult, s_shift = mul_multiplier(scalar(qg.scale), scalar(qs.scale), sy)
    if cand_gate is None:  # w = 1 - gate: 1 is `one` steps of the gate (sigmoid's 1/256: 256)
        one = 1.0 / scalar(qg.scale)
        if one != round(one) or not 1 <= one <= 256:
            raise EdgeqError(f"GatedState node {node.name!r}: its gate's scale {scalar(qg.scale):g} is not 1/k "
                             "for an integer k <= 256, so 1 - gate is not exact",
                             "the gate must be a Sigmoid's output (scale 1/256), as the importer builds it")
        attrs["one"] = int(one)
        u_mult, u_shift = mul_multiplier(scalar(qg.scale), scalar(qc.scale), sy)
    else:
        qw = ctx.qp(cand_gate)
        attrs["cand_gate_zp"] = int(qw.zero_point)
        u_mult, u_shift = mul_multiplier(scalar(qw.scale), scalar(qc.scale), sy)
    if s_shift > S_SHIFT_MAX or u_shift > U_SHIFT_MAX:
        raise EdgeqError(f"GatedState node {node.name!r}: the state's range ({lo:.3g}, {hi:.3g}) is far narrower "
                         "than its inputs' (an int32 overflow in the rescale)",
                         "calibrate with data that exercises the recurrent layer")
    wide = f"{out}/s16"
    ctx.out.add_tensor(Tensor(wide, tuple(ctx.fg.tensors[out].shape), "int16", None, qy))
    ctx.add_node("QGatedState", node.name, [state, gate, cand] + ([cand_gate] if cand_gate else []), [wide],
                 {**attrs, "s_mult": s_mult, "s_shift": s_shift, "u_mult": u_mult, "u_shift": u_shift})
    ctx.wide[out] = wide
    q8 = ctx.act_params(out)
    mult, shift = requant_multiplier(sy, scalar(q8.scale))
    ctx.add_node("QNarrow16", f"{node.name}/int8", [wide], [ctx.add_act(out, q8)],
                 {"y_zp": int(q8.zero_point), "mult": mult, "shift": shift})
    ctx.record(node.name, op="GatedState", state_scale=sy, state_bits=STATE_BITS)
