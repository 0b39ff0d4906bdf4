"""Add -> QAdd, Mul -> QMul with TFLite's ADD / MUL parameterization.

QAdd: both inputs are brought to a common scale t = 2 max(s_a, s_b) with 20 bits of
headroom: (a - a_zp) << 20 is at most 255 * 2^20 < 2^28, and each input multiplier
s/t <= 1/2, so the sum of the two rescaled inputs stays below 2^28 (no int32 overflow).
The output multiplier is t / (2^20 s_y).
QMul: (a - a_zp) * (b - b_zp) <= 255^2 fits easily; multiplier s_a s_b / s_y.
A constant operand is quantized to an int8 constant with its own min/max parameters.
"""
from __future__ import annotations

from edgeq.errors import EdgeqError
from edgeq.quantization.rules import rule
from edgeq.quantization.rules.common import QuantContext, fused_clamp, scalar
from edgeq.quantization.rules.multipliers import add_multipliers, mul_multiplier


@rule("Add")
def quantize_add(ctx: QuantContext, node) -> None:
    a, b = (ctx.int8_input(i) for i in node.inputs[:2])
    qa, qb = ctx.qp(a), ctx.qp(b)
    qy = ctx.act_params(node.outputs[0])
    sa, sb, sy = scalar(qa.scale), scalar(qb.scale), scalar(qy.scale)
    params = add_multipliers(sa, sb, sy)
    if params["y_shift"] > 2:  # |sa + sb| < 2^28: a left shift beyond 2 could leave int32
        raise EdgeqError(f"Add node {node.name!r}: output range is {2 * max(sa, sb) / sy:.3g} times "
                         "narrower than its inputs' (int32 overflow in the rescale)",
                         "calibrate with data that exercises this layer")
    act_min, act_max = fused_clamp(ctx, node, qy)
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QAdd", node.name, [a, b], [y], {
        "a_zp": int(qa.zero_point), "b_zp": int(qb.zero_point), "y_zp": int(qy.zero_point),
        **params, "act_min": act_min, "act_max": act_max})
    ctx.record(node.name, op="Add", in_scales=[sa, sb], out_scale=sy)


@rule("Mul")
def quantize_mul(ctx: QuantContext, node) -> None:
    a, b = (ctx.int8_input(i) for i in node.inputs[:2])
    qa, qb = ctx.qp(a), ctx.qp(b)
    qy = ctx.act_params(node.outputs[0])
    sa, sb, sy = scalar(qa.scale), scalar(qb.scale), scalar(qy.scale)
    y_mult, y_shift = mul_multiplier(sa, sb, sy)
    act_min, act_max = fused_clamp(ctx, node, qy)
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QMul", node.name, [a, b], [y], {
        "a_zp": int(qa.zero_point), "b_zp": int(qb.zero_point), "y_zp": int(qy.zero_point),
        "y_mult": y_mult, "y_shift": y_shift, "act_min": act_min, "act_max": act_max})
    ctx.record(node.name, op="Mul", in_scales=[sa, sb], out_scale=sy)
