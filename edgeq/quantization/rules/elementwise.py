"""Add -> QAdd, Mul -> QMul, MatMul -> QMatMul with TFLite's ADD / MUL / BATCH_MATMUL
parameterization.

QAdd: both inputs are brought to a common scale t = 2 max(s_a, s_b) with 20 bits of
headroom: (a - a_zp) << 20 is at most 255 * 2^20 < 2^28, and each input multiplier
s/t <= 1/2, so the sum of the two rescaled inputs stays below 2^28 (no int32 overflow).
The output multiplier is t / (2^20 s_y).
QMul: (a - a_zp) * (b - b_zp) <= 255^2 fits easily; multiplier s_a s_b / s_y.
QMatMul: K such products summed, |acc| <= K 255^2, checked to fit int32 with the
multiplier's left shift; the same multiplier.
A constant operand is quantized to an int8 constant with its own min/max parameters.
"""
from __future__ import annotations

from edgeq.errors import EdgeqError
from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext, fused_clamp, scalar
from edgeq.quantization.rules.multipliers import add_multipliers, mul_multiplier


@implements("quantize", "Add", emits=("QAdd",))
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


@implements("quantize", "Mul", emits=("QMul",))
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


@implements("quantize", "MatMul", emits=("QMatMul",))
def quantize_matmul(ctx: QuantContext, node) -> None:
    a, b = (ctx.int8_input(i) for i in node.inputs[:2])
    qa, qb = ctx.qp(a), ctx.qp(b)
    qy = ctx.act_params(node.outputs[0])
    sa, sb, sy = scalar(qa.scale), scalar(qb.scale), scalar(qy.scale)
    y_mult, y_shift = mul_multiplier(sa, sb, sy)
    k = int(ctx.fg.tensors[node.inputs[0]].shape[-1])
    if (k * 255 * 255) << max(y_shift, 0) >= 1 << 31:
        raise EdgeqError(f"MatMul node {node.name!r}: {k} products of int8 values"
                         f"{f' shifted left by {y_shift}' if y_shift > 0 else ''} can leave the int32 accumulator",
                         "split the inner dimension (at most 33,000 terms), or calibrate so the output range "
                         "is not far narrower than the inputs'")
    act_min, act_max = fused_clamp(ctx, node, qy)
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QMatMul", node.name, [a, b], [y], {
        "a_zp": int(qa.zero_point), "b_zp": int(qb.zero_point), "y_zp": int(qy.zero_point),
        "y_mult": y_mult, "y_shift": y_shift, "act_min": act_min, "act_max": act_max})
    ctx.record(node.name, op="MatMul", in_scales=[sa, sb], out_scale=sy, k=k)
