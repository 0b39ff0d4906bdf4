"""PRelu: a scalar slope -> QLut; a per-channel slope (along axis 1) -> QPrelu.

QPrelu multipliers: the positive side s_x / s_y (one for all channels), the negative
side |slope[c]| s_x / s_y with neg_sign[c] = sign(slope[c]) (MBQM is odd in its input,
so sign * MBQM(d, |m|) == MBQM(d, m) for a signed m). A zero slope gives multiplier 0.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.fixedpoint import quantize_multiplier, quantize_multiplier_array
from edgeq.ir import Node
from edgeq.ops import float_fn, implements
from edgeq.quantization.rules.common import QuantContext, scalar
from edgeq.quantization.rules.lut import add_lut


@implements("quantize", "PRelu", emits=("QPrelu", "QLut"))
def quantize_prelu(ctx: QuantContext, node) -> None:
    slope = ctx.fconst(node.inputs[1])
    if slope is None:
        raise EdgeqError(f"PRelu node {node.name!r} has a non-constant slope",
                         "export the model with constant PRelu weights")
    flat = np.ravel(slope).astype(np.float64)
    if flat.size == 1 or np.all(flat == flat[0]):
        view = _scalar_view(node, flat[0])
        add_lut(ctx, view, float_fn(view), "PRelu")
        return
    x_shape = ctx.fg.tensors[node.inputs[0]].shape
    channels = x_shape[1] if len(x_shape) > 1 else 0
    if flat.size != channels or not _along_axis1(np.shape(slope), len(x_shape)):
        raise EdgeqError(f"PRelu node {node.name!r}: slope of shape {np.shape(slope)} is neither a "
                         f"scalar nor per channel (axis 1) for an input of shape {x_shape}",
                         "use a scalar or per-channel PRelu slope")
    x = ctx.int8_input(node.inputs[0])
    qx = ctx.qp(x)
    qy = ctx.act_params(node.outputs[0])
    sx, sy = scalar(qx.scale), scalar(qy.scale)
    pos_mult, pos_shift = quantize_multiplier(sx / sy)
    neg_mult, neg_shift = quantize_multiplier_array(np.abs(flat) * sx / sy)
    y = ctx.add_act(node.outputs[0], qy)
    inputs = [x, ctx.add_i32(f"{node.name}_pos_mult", [pos_mult]),
              ctx.add_i32(f"{node.name}_pos_shift", [pos_shift]),
              ctx.add_i32(f"{node.name}_neg_mult", neg_mult),
              ctx.add_i32(f"{node.name}_neg_shift", neg_shift),
              ctx.add_i32(f"{node.name}_neg_sign", np.sign(flat).astype(np.int32))]
    ctx.add_node("QPrelu", node.name, inputs, [y],
                 {"x_zp": int(qx.zero_point), "y_zp": int(qy.zero_point)})
    ctx.record(node.name, op="PRelu", in_scale=sx, out_scale=sy,
               slope_range=[float(flat.min()), float(flat.max())])


def _along_axis1(shape: tuple, x_rank: int) -> bool:
    """True when numpy broadcasting puts the slope's one non-1 dimension on axis 1
    (e.g. [C,1,1] or [1,C,1,1] for NCHW, [C] for [N, C])."""
    if len(shape) > x_rank:
        return False
    padded = (1,) * (x_rank - len(shape)) + tuple(shape)
    return all(d == 1 for i, d in enumerate(padded) if i != 1)


def _scalar_view(node, value: float) -> Node:
    """The PRelu node seen as a LeakyRelu with the one slope (for the LUT rule)."""
    return Node("LeakyRelu", node.name, [node.inputs[0]], node.outputs, {"alpha": float(value)})
