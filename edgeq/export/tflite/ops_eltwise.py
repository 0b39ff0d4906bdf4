"""QAdd -> ADD, QMul -> MUL, QMatMul -> BATCH_MATMUL, QRequant -> QUANTIZE (int8 -> int8).

Their integer semantics are TFLite's kernels by construction (docs/semantics.md), and the
quantizer derives their multipliers from float32 scales exactly as TFLite does
(edgeq.quantize_rules.multipliers); the exporter checks it again here, so a graph from
elsewhere that differs is refused at export time instead of an occasional LSB at run time.

Broadcasting: an operand of lower rank than the output is read with numpy's rule
(leading 1s) and stored in the output's layout; constants are transposed here, lower-
rank activations get a RESHAPE first.
"""
from __future__ import annotations

import numpy as np

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.act import act_output
from edgeq.export.tflite.builder import BuiltinOperator as B
from edgeq.export.tflite.convert import REQUANTIZE_FIX, refuse
from edgeq.ops import implements
from edgeq.quantization.rules.multipliers import add_multipliers, mul_multiplier, requant_multiplier


def operand(ex, node, name: str, out_perm, out_rank: int) -> int:
    """TFLite tensor for an elementwise operand, in the output's layout."""
    data = ex.g.const(name)
    shape = ex.shape(name)
    full = (1,) * (out_rank - len(shape)) + tuple(shape)
    if data is not None:
        arr = np.asarray(data).reshape(full).transpose(out_perm)
        return ex.const(name, arr.astype(np.int8), ex.quant(name))
    if len(shape) == out_rank:
        return ex.get(name, out_perm)
    src = ex.nchw_bytes(name)  # leading 1s do not move bytes
    dst = ex.mb.tensor(f"{name}_r{out_rank}", L.apply(full, out_perm), "int8", ex.quant(name))
    if not L.is_memory_noop(full, out_perm):
        raise refuse(node, f"broadcast operand {name!r} {shape} would need a transpose")
    ex.reshape_op(src, dst, L.apply(full, out_perm))
    return dst


def _check(node, what: str, ours: tuple, theirs: tuple):
    if tuple(int(v) for v in ours) != tuple(int(v) for v in theirs):
        raise refuse(node, f"{what} {ours} differs from the {theirs} TFLite derives from the "
                           "float32 scales", REQUANTIZE_FIX)


def _binary(ex, node):
    a, b = node.inputs[:2]
    y = node.outputs[0]
    rank = len(ex.shape(y))
    perm = ex.layout.setdefault(y, L.default_layout(rank))
    return a, b, y, operand(ex, node, a, perm, rank), operand(ex, node, b, perm, rank)


@implements("tflite", "QAdd", builtins=("ADD", "MAXIMUM", "MINIMUM"))
def convert_add(ex, node):
    a, b, y, ta, tb = _binary(ex, node)
    at = node.attrs
    want = add_multipliers(ex.quant(a).scale[0], ex.quant(b).scale[0], ex.quant(y).scale[0])
    keys = ("left_shift", "a_mult", "a_shift", "b_mult", "b_shift", "y_mult", "y_shift")
    _check(node, "ADD parameters", tuple(at.get(k, 20) for k in keys), tuple(want[k] for k in keys))
    out, code, finish = act_output(ex, node, y)
    ex.mb.op(B.ADD, [ta, tb], [out], "AddOptions", FusedActivationFunction=code)
    finish()


@implements("tflite", "QMul", builtins=("MUL", "MAXIMUM", "MINIMUM"))
def convert_mul(ex, node):
    a, b, y, ta, tb = _binary(ex, node)
    want = mul_multiplier(ex.quant(a).scale[0], ex.quant(b).scale[0], ex.quant(y).scale[0])
    _check(node, "MUL multiplier", (node.attr("y_mult"), node.attr("y_shift")), want)
    out, code, finish = act_output(ex, node, y)
    ex.mb.op(B.MUL, [ta, tb], [out], "MulOptions", FusedActivationFunction=code)
    finish()


@implements("tflite", "QRequant", builtins=("QUANTIZE",))
def convert_requant(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    want = requant_multiplier(ex.quant(x).scale[0], ex.quant(y).scale[0])
    _check(node, "QUANTIZE multiplier", (node.attr("mult"), node.attr("shift")), want)
    perm = ex.layout.setdefault(y, L.default_layout(len(ex.shape(y))))
    ex.mb.op(B.QUANTIZE, [ex.get(x, perm)], [ex.new_act(y, perm)])


@implements("tflite", "QMatMul", builtins=("BATCH_MATMUL",))
def convert_matmul(ex, node):
    """BATCH_MATMUL on the tensors in edgeq's own (row-major, ONNX) order: a matrix product
    has no channels axis for NHWC to move."""
    a, b = node.inputs[:2]
    y = node.outputs[0]
    want = mul_multiplier(ex.quant(a).scale[0], ex.quant(b).scale[0], ex.quant(y).scale[0])
    _check(node, "BATCH_MATMUL multiplier", (node.attr("y_mult"), node.attr("y_shift")), want)
    if (int(node.attr("act_min", -128)), int(node.attr("act_max", 127))) != (-128, 127):
        raise refuse(node, "BATCH_MATMUL has no output clamp")
    ins = []
    for name in (a, b):
        data = ex.g.const(name)
        ins.append(ex.const(name, np.asarray(data, np.int8), ex.quant(name)) if data is not None
                   else ex.get(name, L.identity(len(ex.shape(name)))))
    perm = ex.layout.setdefault(y, L.identity(len(ex.shape(y))))
    ex.mb.op(B.BATCH_MATMUL, ins, [ex.new_act(y, perm)], "BatchMatMulOptions", AdjX=False, AdjY=False)
