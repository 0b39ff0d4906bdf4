"""Unary non-linearities -> QLut with a 256-entry table computed at compile time.

table[q + 128] = quantize_y(f(dequantize_x(q))) for every int8 q (round half to even,
clamp), evaluated in float64. An int8 input has only 256 values, so the table is the
exact best int8 answer for the given input/output parameters, and one load per element
on the device.

Two families follow TFLite so that the table is TFLite's own int8 kernel (and exports as
that builtin, docs/tflite.md):
- Sigmoid and Tanh get TFLite's fixed output parameters (LOGISTIC: 1/256, -128; TANH:
  1/128, 0; like Softmax) instead of calibrated ones: on [0, 1) and [-1, 1) these are
  within a hair of what calibration would give, and TFLite's kernels accept nothing else.
  The exactly rounded table then equals LOGISTIC / TANH in LiteRT and TFLite Micro
  (tests/test_tflite_oracle_activations.py) except where an entry lies within a few
  millionths of an LSB of a rounding boundary, where even those two runtimes disagree.
- HardSwish is TFLite's HARD_SWISH fixed-point kernel tabulated (hardswish.py): it
  differs from the exactly rounded table by 1 LSB on about 0.2% of entries.

Used for Sigmoid, Tanh, HardSwish, HardSigmoid, LeakyRelu, scalar PRelu, Sqrt, Pow with
a constant exponent (other than 2, which imports as a Mul), and a Relu/Clip that
fuse_activation could not fold into its producer.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import QParams
from edgeq.ops import float_fn, implements  # float_fn: the op declaration's float math, written once
from edgeq.quantization.rules.common import QuantContext
from edgeq.quantization.rules.hardswish import hard_swish_table

# TFLite's int8 LOGISTIC and TANH kernels take only these output parameters.
FIXED_OUTPUT = {"Sigmoid": (1.0 / 256.0, -128), "Tanh": (1.0 / 128.0, 0)}


def lut_inputs(qx: QParams) -> np.ndarray:
    """The real value of every int8 input, index q + 128."""
    return (np.arange(-128, 128, dtype=np.int64) - int(qx.zero_point)) * float(qx.scale)


def lut_table(fn, qx: QParams, qy: QParams) -> np.ndarray:
    return qy.quantize(fn(lut_inputs(qx).astype(np.float64))).astype(np.int8)


def add_lut(ctx: QuantContext, node, fn, fn_name: str) -> None:
    x = ctx.int8_input(node.inputs[0])
    qx = ctx.qp(x)
    fixed = FIXED_OUTPUT.get(fn_name)
    qy = QParams(*fixed) if fixed else ctx.act_params(node.outputs[0])
    table = hard_swish_table(qx, qy) if fn_name == "HardSwish" else None
    if table is None:  # (TFLite refuses HardSwish parameters whose output step is very fine)
        table = lut_table(fn, qx, qy)
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QLut", node.name, [x, ctx.add_const(f"{node.name}_table", table)], [y],
                 {"fn": fn_name})
    ctx.record(node.name, op=node.op, in_scale=float(qx.scale), out_scale=float(qy.scale))


@implements("quantize", "Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Sqrt", "Pow", emits=("QLut",))
def quantize_unary(ctx: QuantContext, node) -> None:
    add_lut(ctx, node, float_fn(node), node.op)
