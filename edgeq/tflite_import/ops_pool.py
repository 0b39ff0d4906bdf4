"""AVERAGE_POOL_2D -> QAvgPool, MAX_POOL_2D -> QMaxPool (NCHW).

TFLite Micro's int8 pools do not rescale: the output integers are the input's (the
converter gives both tensors one scale and zero point). QAvgPool divides the sum of the
taps inside the input by their count, rounding half away from zero, which is TFLite's
(sum +- n/2) / n; SAME padding only moves the windows (padded taps are not counted).
"""
from __future__ import annotations

from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference._common import pool_out_size
from edgeq.ops import implements
from edgeq.tflite_import.builder import Importer, op_error
from edgeq.tflite_import.ops_conv import tflite_pads
from edgeq.tflite_import.reader import TOp


def _window(imp: Importer, op: TOp) -> dict:
    o = op.options
    tx, ty = imp.t(op.inputs[0]), imp.t(op.outputs[0])
    qx, qy = imp.qparams(tx), imp.qparams(ty)
    if (float(qx.scale), int(qx.zero_point)) != (float(qy.scale), int(qy.zero_point)):
        raise op_error(op, "input and output quantization differ (TFLite's int8 pools do not rescale)")
    kernel, strides = [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()]
    pads = tflite_pads(tx.shape[1:3], kernel, strides, (1, 1), same=o.Padding() == 0)
    out_hw = [pool_out_size(tx.shape[1 + a], kernel[a], strides[a], pads[a], pads[a + 2], 1) for a in (0, 1)]
    if tuple(ty.shape) != (tx.shape[0], *out_hw, tx.shape[3]):
        raise op_error(op, f"output shape {ty.shape} is not the {out_hw} TFLite's padding gives")
    act_min, act_max = imp.clamp(op, o.FusedActivationFunction(), qy)
    return {"kernel": kernel, "strides": strides, "pads": pads, "dilations": [1, 1],
            "act_min": act_min, "act_max": act_max}


@implements("tflite-import", "AVERAGE_POOL_2D", emits=("QAvgPool",))
def average_pool_2d(imp: Importer, op: TOp) -> None:
    attrs = _window(imp, op)
    recip, rshift = avgpool_recips(*attrs["kernel"])
    x = imp.nchw(op.inputs[0])
    y = imp.activation(op.outputs[0], nchw=True)
    imp.node("QAvgPool", f"average_pool_2d_{op.index}", [x], [y], {
        **attrs, "count_include_pad": 0, "x_zp": int(imp.g.tensors[x].q.zero_point),
        "recip": recip, "rshift": rshift})


@implements("tflite-import", "MAX_POOL_2D", emits=("QMaxPool",))
def max_pool_2d(imp: Importer, op: TOp) -> None:
    attrs = _window(imp, op)
    x = imp.nchw(op.inputs[0])
    y = imp.activation(op.outputs[0], nchw=True)
    imp.node("QMaxPool", f"max_pool_2d_{op.index}", [x], [y], attrs)
