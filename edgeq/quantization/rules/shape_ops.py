"""Data movement: Reshape, Identity -> QReshape; Transpose -> QTranspose; Pad -> QPad;
Gather -> QGather; Concat -> QConcat (+ QRequant before inputs whose parameters differ).

Reshape, Transpose, Pad and Gather keep the input's parameters on the output (they move bytes,
never values). Concat copies bytes too, so all its inputs must already carry the output's
parameters: the output takes the calibrated range of the concatenation (which contains
every input's range) and each input with other parameters goes through a QRequant
(TFLite QUANTIZE int8 -> int8, multiplier s_x / s_y). A constant input is quantized
straight to the output's parameters.
"""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext, scalar
from edgeq.quantization.rules.multipliers import requant_multiplier


def _passthrough(ctx: QuantContext, node) -> tuple[str, str]:
    x = ctx.int8_input(node.inputs[0])
    return x, ctx.add_act(node.outputs[0], ctx.qp(x))


@implements("quantize", "Reshape", "Identity", emits=("QReshape",))
def quantize_reshape(ctx: QuantContext, node) -> None:
    x, y = _passthrough(ctx, node)
    shape = node.attr("shape") if node.op == "Reshape" else ctx.fg.tensors[node.outputs[0]].shape
    shape = [int(d) for d in shape]
    in_shape = ctx.fg.tensors[node.inputs[0]].shape
    # The float graph resolves the batch dim to its export value (1); ONNX's 0 ("keep the
    # input's dim") lets the same node run on a batch of N in the reference and the runner.
    if len(shape) > 1 and len(in_shape) > 1 and shape[0] == in_shape[0]:
        shape[0] = 0
    ctx.add_node("QReshape", node.name, [x], [y], {"shape": shape})


@implements("quantize", "Transpose", emits=("QTranspose",))
def quantize_transpose(ctx: QuantContext, node) -> None:
    x, y = _passthrough(ctx, node)
    ctx.add_node("QTranspose", node.name, [x], [y], {"perm": [int(p) for p in node.attr("perm")]})


@implements("quantize", "Pad", emits=("QPad",))
def quantize_pad(ctx: QuantContext, node) -> None:
    x, y = _passthrough(ctx, node)
    q = ctx.qp(x)
    value = float(node.attr("value", 0.0))
    # The pad value in the input's parameters (0.0 -> x_zp); a value outside the range clamps.
    qvalue = int(q.quantize(np.array(value)))
    ctx.add_node("QPad", node.name, [x], [y], {"pads": [int(p) for p in node.attr("pads")],
                                              "value": qvalue})


@implements("quantize", "Gather", emits=("QGather",))
def quantize_gather(ctx: QuantContext, node) -> None:
    x, y = _passthrough(ctx, node)
    ctx.add_node("QGather", node.name, [x], [y], {"axis": int(node.attr("axis")),
                                                  "indices": [int(i) for i in node.attr("indices")]})


def requant(ctx: QuantContext, x: str, target, base: str) -> str:
    """A QRequant node moving int8 tensor x to the parameters `target`; returns its output."""
    qx = ctx.qp(x)
    mult, shift = requant_multiplier(scalar(qx.scale), scalar(target.scale))
    y = ctx.add_act(ctx.out.unique_name(f"{x}_requant"), target, shape=ctx.out.tensors[x].shape)
    ctx.add_node("QRequant", ctx.out.unique_name(base), [x], [y], {
        "x_zp": int(qx.zero_point), "y_zp": int(target.zero_point), "mult": mult, "shift": shift})
    return y


def same_params(a, b) -> bool:
    return scalar(a.scale) == scalar(b.scale) and int(a.zero_point) == int(b.zero_point)


@implements("quantize", "Concat", emits=("QConcat", "QRequant"))
def quantize_concat(ctx: QuantContext, node) -> None:
    qy = ctx.act_params(node.outputs[0])
    inputs = []
    for i, name in enumerate(node.inputs):
        if ctx.fconst(name) is not None:
            inputs.append(ctx.int8_input(name, qy))
        elif same_params(ctx.qp(name), qy):
            inputs.append(name)
        else:
            inputs.append(requant(ctx, name, qy, f"{node.name}_requant{i}"))
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QConcat", node.name, inputs, [y], {"axis": int(node.attr("axis"))})
    ctx.record(node.name, op="Concat", requantized=sum(a != b for a, b in zip(inputs, node.inputs)))
