"""RESHAPE / SQUEEZE -> QReshape, PAD -> QPad, CONCATENATION -> QConcat.

RESHAPE reads TFLite's byte order (the activation is moved out of NCHW first when the
orders differ). PAD and CONCATENATION of rank-4 activations run in NCHW with their axes
mapped; TFLite's int8 PAD fills with the zero point, and CONCATENATION copies the int8
values without rescaling (so does QConcat).
"""
from __future__ import annotations

from edgeq.ops import implements
from edgeq.tflite_import.builder import TO_NCHW, Importer, op_error
from edgeq.tflite_import.reader import TOp


@implements("tflite-import", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", emits=("QReshape",))
def reshape(imp: Importer, op: TOp) -> None:
    tx, ty = imp.t(op.inputs[0]), imp.t(op.outputs[0])
    qx, qy = imp.qparams(tx), imp.qparams(ty)
    if (float(qx.scale), int(qx.zero_point)) != (float(qy.scale), int(qy.zero_point)):
        raise op_error(op, "input and output quantization differ")
    x = imp.plain(op.inputs[0])
    y = imp.activation(op.outputs[0], nchw=False)
    # the batch axis is copied (0) when it stays first, so a batch of N runs as N samples
    keep_batch = tx.shape[:1] == ty.shape[:1] and len(ty.shape) > 0
    shape = [0] + list(ty.shape[1:]) if keep_batch else list(ty.shape)
    imp.node("QReshape", f"{op.builtin.lower()}_{op.index}", [x], [y], {"shape": shape})


@implements("tflite-import", "PAD", emits=("QPad",))
def pad(imp: Importer, op: TOp) -> None:
    tx, tp = imp.t(op.inputs[0]), imp.t(op.inputs[1])
    if tp.data is None:
        raise op_error(op, "the paddings are not a constant")
    pairs = tp.data.reshape(-1, 2).tolist()
    qx, qy = imp.qparams(tx), imp.qparams(imp.t(op.outputs[0]))
    if (float(qx.scale), int(qx.zero_point)) != (float(qy.scale), int(qy.zero_point)):
        raise op_error(op, "input and output quantization differ")
    nchw = len(tx.shape) == 4
    if nchw:
        pairs = [pairs[a] for a in TO_NCHW]
    x = imp.nchw(op.inputs[0]) if nchw else imp.plain(op.inputs[0])
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QPad", f"pad_{op.index}", [x], [y], {
        "pads": [p[0] for p in pairs] + [p[1] for p in pairs], "value": int(qy.zero_point),
        "x_zp": int(qx.zero_point)})


@implements("tflite-import", "CONCATENATION", emits=("QConcat",))
def concatenation(imp: Importer, op: TOp) -> None:
    o = op.options
    if o.FusedActivationFunction() != 0:
        raise op_error(op, "a fused activation on CONCATENATION")
    ts = [imp.t(i) for i in op.inputs]
    if any(t.data is not None for t in ts):
        raise op_error(op, "a constant input to CONCATENATION")
    rank = len(ts[0].shape)
    axis = o.Axis() % rank
    nchw = rank == 4
    xs = [imp.nchw(i) if nchw else imp.plain(i) for i in op.inputs]
    y = imp.activation(op.outputs[0], nchw)
    imp.node("QConcat", f"concatenation_{op.index}", xs, [y],
             {"axis": TO_NCHW.index(axis) if nchw else axis})
