"""GatedState -> QGatedState (+ QNarrow16): int16 gates, the recurrent state carried in int16.

    y = sigmoid(gate) * state + w * tanh(cand),   w = sigmoid(cand_gate), or 1 - sigmoid(gate) (GRU)

The state a cell carries from step to step is where rounding compounds, so:
- the gates and the candidate are int16 (Q0.15: scale 2^-15, zero point 0), each a
  256-entry table of its int8 pre-activation, exactly rounded (round half to even) and
  clamped to int16: sigmoid in [0, 32767], tanh in [-32768, 32767]. The pre-activations
  stay int8 (they are QGemm / QAdd outputs like any other); only the gates' own rounding
  shrinks from 2^-9 to 2^-16;
- the state is a symmetric int16 tensor (zero point 0, scale = max(|lo|, |hi|) / 32767 of
  its calibrated range, at least 2^-8 / 32767 so that the products' multipliers stay
  below 1, rounded to float32).
The int16 state tensor gets the name `<state>/s16`; the float tensor's own name becomes its
int8 copy (QNarrow16, with the calibrated int8 parameters), which every other reader (the
recurrent Gemms, r * h, tanh(c), the graph output) reads as before, and the next step's
GatedState reads the int16 tensor (`ctx.wide`).

Multipliers: the state product G * state has the real scale 2^-15 s_state / s_y, the
candidate product W * C the real scale 2^-30 / s_y; both are below 1 (shift <= 0), which
docs/semantics.md's bounds need (|G * state|, |W * C| <= 2^30).
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import QParams, Tensor
from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext, scalar
from edgeq.quantization.rules.lut import lut_inputs
from edgeq.quantization.rules.multipliers import f32, quantize_multiplier, requant_multiplier

STATE_BITS = 16
Q15 = 1 << 15
MIN_STATE_RANGE = 2.0 ** -8  # keeps 2^-30 / s_y below 1 (s_y >= 2^-8 / 32767 > 2^-23)


def state_qparams(lo: float, hi: float) -> QParams:
    """Symmetric int16: scale = max(|lo|, |hi|, 2^-8) / 32767."""
    m = max(abs(float(lo)), abs(float(hi)))
    if not math.isfinite(m):
        raise EdgeqError(f"recurrent state range ({lo}, {hi}) is not finite",
                         "check the calibration data for NaN/inf")
    return QParams(np.float64(f32(max(m, MIN_STATE_RANGE) / 32767.0)), np.int64(0), bits=STATE_BITS)


def q15_table(fn, qx: QParams) -> np.ndarray:
    """fn of every int8 input in Q0.15, index q + 128 (round half to even, clamp to int16)."""
    return np.clip(np.round(fn(lut_inputs(qx)) * Q15), -Q15, Q15 - 1).astype(np.int16)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _state_input(ctx: QuantContext, name: str) -> str:
    if name in ctx.wide:
        return ctx.wide[name]
    data = ctx.fconst(name)
    if data is None:  # only a GatedState writes a state, so this is a graph built by hand
        raise EdgeqError(f"GatedState reads {name!r}, which is neither a constant initial state nor "
                         "another GatedState's output", "build recurrent cells with edgeq's importer")
    q = state_qparams(float(np.min(data)), float(np.max(data)))
    return ctx.add_const(f"{name}_q16", q.quantize(data).astype(np.int16), q)


def _below_one(real: float, node, what: str) -> tuple[int, int]:
    mult, shift = quantize_multiplier(real)
    if shift > 0:
        raise EdgeqError(f"GatedState node {node.name!r}: the {what} multiplier {real:.3g} is not below 1 "
                         "(the state's range is far narrower than its inputs')",
                         "calibrate with data that exercises the recurrent layer")
    return mult, shift


@implements("quantize", "GatedState", emits=("QGatedState", "QNarrow16"))
def quantize_gated_state(ctx: QuantContext, node) -> None:
    state = _state_input(ctx, node.inputs[0])
    gate, cand = (ctx.int8_input(i) for i in node.inputs[1:3])
    ins = [state, gate, cand, ctx.add_const(f"{node.name}_gate_table", q15_table(_sigmoid, ctx.qp(gate))),
           ctx.add_const(f"{node.name}_cand_table", q15_table(np.tanh, ctx.qp(cand)))]
    if len(node.inputs) > 3 and node.inputs[3]:
        cand_gate = ctx.int8_input(node.inputs[3])
        ins += [cand_gate, ctx.add_const(f"{node.name}_cand_gate_table", q15_table(_sigmoid, ctx.qp(cand_gate)))]
    out = node.outputs[0]
    qy = state_qparams(*ctx.range_of(out))
    sy = scalar(qy.scale)
    s_mult, s_shift = _below_one(scalar(ctx.qp(state).scale) / Q15 / sy, node, "state")
    u_mult, u_shift = _below_one(1.0 / (Q15 * Q15) / sy, node, "candidate")
    wide = f"{out}/s16"
    ctx.out.add_tensor(Tensor(wide, tuple(ctx.fg.tensors[out].shape), "int16", None, qy))
    ctx.add_node("QGatedState", node.name, ins, [wide],
                 {"s_mult": s_mult, "s_shift": s_shift, "u_mult": u_mult, "u_shift": u_shift})
    ctx.wide[out] = wide
    q8 = ctx.act_params(out)
    mult, shift = requant_multiplier(sy, scalar(q8.scale))
    ctx.add_node("QNarrow16", f"{node.name}/int8", [wide], [ctx.add_act(out, q8)],
                 {"y_zp": int(q8.zero_point), "mult": mult, "shift": shift})
    ctx.record(node.name, op="GatedState", state_scale=sy, state_bits=STATE_BITS)
