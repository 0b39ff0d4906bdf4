"""QSoftmax -> SOFTMAX (int8 in, int8 out with scale 1/256, zero point -128).

edgeq's QSoftmax is TFLite's reference int8 softmax; TFLite derives input_mult,
input_left_shift and diff_min from the float32 input scale and beta, as the quantizer
did (the exporter checks it). TFLite's softmax runs over the last
axis, so the input is read in a layout where edgeq's axis is last.
"""
from __future__ import annotations

import numpy as np

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.builder import BuiltinOperator as B
from edgeq.export.tflite.convert import REQUANTIZE_FIX, refuse
from edgeq.ops import implements
from edgeq.reference.softmax import softmax_params


@implements("tflite", "QSoftmax", builtins=("SOFTMAX",))
def convert_softmax(ex, node):
    x, y = node.inputs[0], node.outputs[0]
    rank = len(ex.shape(x))
    axis = int(node.attr("axis", -1)) % rank
    beta = float(np.float32(node.attr("beta", 1.0)))
    want = softmax_params(ex.quant(x).scale[0], beta)
    ours = {k: int(node.attr(k)) for k in want}
    if ours != want:
        raise refuse(node, f"softmax parameters {ours} differ from TFLite's {want}",
                     REQUANTIZE_FIX)
    yq = ex.quant(y)
    if abs(yq.scale[0] - 1 / 256) > 0 or yq.zero_point[0] != -128:
        raise refuse(node, "TFLite's int8 softmax needs output scale 1/256, zero point -128")
    perm = ex.layout.get(x, L.default_layout(rank))
    if L.map_axis(axis, rank, perm) != rank - 1:
        # put edgeq's axis last: the default layout for rank 4 does that for axis 1
        perm = L.NHWC if (rank == 4 and axis == 1) else \
            tuple(a for a in range(rank) if a != axis) + (axis,)
    ex.layout.setdefault(y, perm)
    if ex.layout[y] != perm:
        raise refuse(node, "softmax output layout conflict")
    ex.mb.op(B.SOFTMAX, [ex.get(x, perm)], [ex.new_act(y, perm)], "SoftmaxOptions", Beta=beta)
