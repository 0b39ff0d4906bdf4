"""ADD -> QAdd, MUL -> QMul, QUANTIZE (int8 -> int8) -> QRequant, SOFTMAX -> QSoftmax,
HARD_SWISH -> QLut.

Multipliers as TFLite Micro prepares them, from the file's float32 scales in double:
ADD's t = 2 max(s_a, s_b) form (multipliers.add_multipliers, left shift 20), MUL's
s_a s_b / s_y, QUANTIZE's s_in / s_out, SOFTMAX's beta s_in 2^26 (softmax_params, with
the file's float32 beta). HARD_SWISH's table is TFLite's own int8 kernel evaluated on all
256 inputs (quantization.rules.hardswish), so it is that kernel, bit for bit.

Elementwise ops run in NCHW when every operand is a rank-4 activation of one shape, else
in TFLite's layout (broadcasting follows TFLite's axes there).
"""
from __future__ import annotations

from edgeq.reference.softmax import softmax_params
from edgeq.ops import implements
from edgeq.quantization.rules.hardswish import hard_swish_table
from edgeq.quantization.rules.multipliers import add_multipliers, mul_multiplier, requant_multiplier
from edgeq.quantization.rules.softmax import SOFTMAX_OUT
from edgeq.tflite_import.builder import Importer, op_error
from edgeq.tflite_import.reader import TOp


def operands(imp: Importer, op: TOp) -> tuple[list[str], bool]:
    """The two operands (constants as int8 constants in TFLite's layout) and whether the
    op runs in NCHW."""
    ts = [imp.t(i) for i in op.inputs[:2]]
    nchw = all(t.data is None and len(t.shape) == 4 for t in ts) and ts[0].shape == ts[1].shape
    names = []
    for i, t in zip(op.inputs[:2], ts):
        if t.data is not None:
            if t.dtype != "int8":
                raise op_error(op, f"constant operand {t.name!r} is {t.dtype}, not int8")
            names.append(imp.const(t.name, t.data.copy(), imp.qparams(t)))
        else:
            names.append(imp.nchw(i) if nchw else imp.plain(i))
    return names, nchw


def _fused(op: TOp) -> int:
    return 0 if op.options is None else op.options.FusedActivationFunction()


@implements("tflite-import", "ADD", emits=("QAdd",))
def add(imp: Importer, op: TOp) -> None:
    (a, b), nchw = operands(imp, op)
    qa, qb, qy = (imp.qparams(imp.t(i)) for i in (*op.inputs[:2], op.outputs[0]))
    params = add_multipliers(float(qa.scale), float(qb.scale), float(qy.scale))
    if params["y_shift"] > 2:  # the rescaled sum is < 2^29: a larger left shift leaves int32
        raise op_error(op, f"the output scale is {2 * max(float(qa.scale), float(qb.scale)) / float(qy.scale):.3g} "
                           "times finer than the inputs' (int32 overflow in the rescale)")
    act_min, act_max = imp.clamp(op, _fused(op), qy)
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QAdd", f"add_{op.index}", [a, b], [y], {
        "a_zp": int(qa.zero_point), "b_zp": int(qb.zero_point), "y_zp": int(qy.zero_point),
        **params, "act_min": act_min, "act_max": act_max})


@implements("tflite-import", "MUL", emits=("QMul",))
def mul(imp: Importer, op: TOp) -> None:
    (a, b), nchw = operands(imp, op)
    qa, qb, qy = (imp.qparams(imp.t(i)) for i in (*op.inputs[:2], op.outputs[0]))
    y_mult, y_shift = mul_multiplier(float(qa.scale), float(qb.scale), float(qy.scale))
    act_min, act_max = imp.clamp(op, _fused(op), qy)
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QMul", f"mul_{op.index}", [a, b], [y], {
        "a_zp": int(qa.zero_point), "b_zp": int(qb.zero_point), "y_zp": int(qy.zero_point),
        "y_mult": y_mult, "y_shift": y_shift, "act_min": act_min, "act_max": act_max})


@implements("tflite-import", "QUANTIZE", emits=("QRequant",))
def quantize(imp: Importer, op: TOp) -> None:
    tx = imp.t(op.inputs[0])
    if tx.dtype != "int8":
        raise op_error(op, f"quantizes a {tx.dtype} tensor (float model I/O)",
                       "convert with inference_input_type=int8 and inference_output_type=int8")
    nchw = op.inputs[0] in imp.nchw_names
    x = imp.nchw(op.inputs[0]) if nchw else imp.plain(op.inputs[0])
    qx, qy = imp.qparams(tx), imp.qparams(imp.t(op.outputs[0]))
    mult, shift = requant_multiplier(float(qx.scale), float(qy.scale))
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QRequant", f"quantize_{op.index}", [x], [y], {
        "x_zp": int(qx.zero_point), "y_zp": int(qy.zero_point), "mult": mult, "shift": shift})


@implements("tflite-import", "SOFTMAX", emits=("QSoftmax",))
def softmax(imp: Importer, op: TOp) -> None:
    tx, ty = imp.t(op.inputs[0]), imp.t(op.outputs[0])
    qx, qy = imp.qparams(tx), imp.qparams(ty)
    if (float(qy.scale), int(qy.zero_point)) != SOFTMAX_OUT:
        raise op_error(op, f"output scale {float(qy.scale):g} / zero point {int(qy.zero_point)} "
                           "(TFLite Micro's int8 SOFTMAX writes 1/256, -128)")
    beta = float(op.options.Beta()) if op.options is not None else 1.0
    try:
        params = softmax_params(float(qx.scale), beta)
    except ValueError as e:
        raise op_error(op, str(e)) from None
    x = imp.plain(op.inputs[0])
    y = imp.activation(op.outputs[0], nchw=False)
    imp.node("QSoftmax", f"softmax_{op.index}", [x], [y],
             {"axis": len(tx.shape) - 1, "beta": beta, **params})


@implements("tflite-import", "HARD_SWISH", emits=("QLut",))
def hard_swish(imp: Importer, op: TOp) -> None:
    tx, ty = imp.t(op.inputs[0]), imp.t(op.outputs[0])
    table = hard_swish_table(imp.qparams(tx), imp.qparams(ty))
    if table is None:
        raise op_error(op, "TFLite refuses these input / output scales for int8 HARD_SWISH")
    nchw = op.inputs[0] in imp.nchw_names
    x = imp.nchw(op.inputs[0]) if nchw else imp.plain(op.inputs[0])
    name = f"hard_swish_{op.index}"
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QLut", name, [x, imp.const(f"{name}_table", table)], [y], {"fn": "HardSwish"})
