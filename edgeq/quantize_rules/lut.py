"""Unary non-linearities -> QLut with a 256-entry table computed at compile time.

table[q + 128] = quantize_y(f(dequantize_x(q))) for every int8 q (round half to even,
clamp), evaluated in float64. An int8 input has only 256 values, so the table is the
exact best int8 answer for the given input/output parameters — more accurate than
TFLite's fixed-point polynomials, and one load per element on the device.

Used for Sigmoid, Tanh, HardSwish, HardSigmoid, LeakyRelu, scalar PRelu, and a
Relu/Clip that fuse_activation could not fold into its producer.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import QParams
from edgeq.quantize_rules import rule
from edgeq.quantize_rules.common import QuantContext


def float_fn(node, ctx: QuantContext | None = None):
    """The float function of a unary node (float64 in, float64 out)."""
    op = node.op
    if op == "Relu":
        return lambda x: np.maximum(x, 0.0)
    if op == "Clip":
        lo = node.attr("min", -np.inf)
        hi = node.attr("max", np.inf)
        return lambda x: np.clip(x, lo, hi)
    if op == "Sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    if op == "Tanh":
        return np.tanh
    if op == "HardSwish":
        return lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if op == "HardSigmoid":
        alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
        return lambda x: np.clip(alpha * x + beta, 0.0, 1.0)
    if op == "LeakyRelu":
        alpha = float(node.attr("alpha", 0.01))
        return lambda x: np.where(x >= 0, x, alpha * x)
    if op == "PRelu":  # scalar slope only (per-channel goes to QPrelu)
        slope = float(np.ravel(ctx.fconst(node.inputs[1]))[0])
        return lambda x: np.where(x >= 0, x, slope * x)
    raise KeyError(op)


def lut_table(fn, qx: QParams, qy: QParams) -> np.ndarray:
    q = np.arange(-128, 128, dtype=np.int64)
    real = (q - int(qx.zero_point)) * float(qx.scale)
    return qy.quantize(fn(real.astype(np.float64))).astype(np.int8)


def add_lut(ctx: QuantContext, node, fn, fn_name: str) -> None:
    x = ctx.int8_input(node.inputs[0])
    qx = ctx.qp(x)
    qy = ctx.act_params(node.outputs[0])
    table = lut_table(fn, qx, qy)
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QLut", node.name, [x, ctx.add_const(f"{node.name}_table", table)], [y],
                 {"fn": fn_name})
    ctx.record(node.name, op=node.op, in_scale=float(qx.scale), out_scale=float(qy.scale))


@rule("Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu")
def quantize_unary(ctx: QuantContext, node) -> None:
    add_lut(ctx, node, float_fn(node, ctx), node.op)
