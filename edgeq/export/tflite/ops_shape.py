"""QReshape, QTranspose, QConcat, QPad, QGather: data movement, quantization unchanged.

QReshape reinterprets edgeq's NCHW byte order, so its input must be in an NCHW-ordered
TFLite tensor: when the input sits in NHWC with spatial dims other than 1x1 (and C > 1)
a TRANSPOSE back to NCHW comes first (FULLY_CONNECTED avoids that by permuting its
weights, see ops_conv). QTranspose becomes the TFLite permutation between the two
tensors' layouts; when that is the identity (the NHWC->NCHW Transpose at the MLPerf
models' input) the node disappears, and when it only moves size-1 axes it is a RESHAPE.
QGather is GATHER with constant int32 indices along the axis that holds edgeq's axis
in the tensor's layout (a copy: exact in any runtime).
"""
from __future__ import annotations

import numpy as np

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.builder import BuiltinOperator as B
from edgeq.export.tflite.convert import refuse
from edgeq.ops import implements


@implements("tflite", "QReshape", builtins=("RESHAPE", "TRANSPOSE"))
def convert_reshape(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    yshape = ex.shape(y)
    perm = ex.layout.setdefault(y, L.default_layout(len(yshape)))
    src = ex.nchw_bytes(x)
    if L.is_memory_noop(yshape, perm):
        target = L.apply(yshape, perm)
        if tuple(ex.mb.tensors[src].shape) == target:
            ex.alias(y, perm, src)  # same bytes, same shape: nothing to do
        else:
            ex.reshape_op(src, ex.new_act(y, perm), target)
        return
    mid = ex.new_act(y, L.identity(len(yshape)))  # NCHW bytes of y, then to its layout
    ex.reshape_op(src, mid, yshape)
    ex.get(y, perm)


@implements("tflite", "QTranspose", builtins=("TRANSPOSE", "RESHAPE"))
def convert_transpose(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    rank = len(ex.shape(x))
    q = node.attr("perm")
    q = tuple(range(rank))[::-1] if q is None else tuple(int(p) for p in q)
    have = ex.layout[x]
    want = ex.layout.setdefault(y, L.default_layout(rank))
    r = L.relative(have, q, want)
    src = ex.get(x, have)
    if r == L.identity(rank):
        ex.alias(y, want, src)
    elif L.is_memory_noop(L.apply(ex.shape(x), have), r):
        ex.reshape_op(src, ex.new_act(y, want), L.apply(ex.shape(y), want))
    else:
        ex.transpose_op(src, ex.new_act(y, want), r)


@implements("tflite", "QConcat", builtins=("CONCATENATION",))
def convert_concat(ex, node):
    y = node.outputs[0]
    rank = len(ex.shape(y))
    perm = ex.layout.setdefault(y, L.default_layout(rank))
    yq = ex.quant(y)
    ins = []
    for name in node.inputs:
        if (ex.quant(name).scale, ex.quant(name).zero_point) != (yq.scale, yq.zero_point):
            raise refuse(node, f"input {name!r} has other quantization than the output "
                               "(the quantizer inserts QRequant for that)")
        data = ex.g.const(name)
        if data is not None:
            ins.append(ex.const(name, np.asarray(data, np.int8).transpose(perm), ex.quant(name)))
        else:
            ins.append(ex.get(name, perm))
    axis = L.map_axis(int(node.attr("axis")), rank, perm)
    ex.mb.op(B.CONCATENATION, ins, [ex.new_act(y, perm)], "ConcatenationOptions", Axis=axis)


@implements("tflite", "QPad", builtins=("PAD", "PADV2"))
def convert_pad(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    rank = len(ex.shape(x))
    pads = [int(p) for p in node.attr("pads")]
    perm = ex.layout.setdefault(y, L.default_layout(rank))
    paddings = ex.i32(f"{node.name}_paddings", [[pads[a], pads[a + rank]] for a in perm])
    q = ex.quant(y)
    value = int(node.attr("value", node.attr("x_zp", 0)))
    src, out = ex.get(x, perm), ex.new_act(y, perm)
    if value == q.zero_point[0]:
        ex.mb.op(B.PAD, [src, paddings], [out], "PadOptions")
    else:
        cv = ex.const(f"{node.name}_value", np.array([value], np.int8), q)
        ex.mb.op(B.PADV2, [src, paddings, cv], [out], "PadV2Options")


@implements("tflite", "QGather", builtins=("GATHER",))
def convert_gather(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    rank = len(ex.shape(x))
    perm = ex.layout.setdefault(y, L.default_layout(rank))
    indices = ex.i32(f"{node.name}_indices", [int(i) for i in node.attr("indices")])
    axis = L.map_axis(int(node.attr("axis")), rank, perm)
    ex.mb.op(B.GATHER, [ex.get(x, perm), indices], [ex.new_act(y, perm)], "GatherOptions",
             Axis=axis, BatchDims=0)
