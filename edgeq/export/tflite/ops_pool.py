"""QMaxPool -> MAX_POOL_2D, QAvgPool -> AVERAGE_POOL_2D, QResizeBilinear -> RESIZE_BILINEAR.

Both TFLite pools look only at the taps inside the input and AVERAGE_POOL_2D divides by
the number of those taps with round-half-away: edgeq's QAvgPool with count_include_pad=0
is that operator (docs/semantics.md). Pads are SAME or VALID when TFLite's rule gives
them (see ops_conv.tf_padding). Other pads: max pool gets a PADV2 with -128 first (a pad
tap never beats a real one, and every window has one), average pool with
count_include_pad=1 gets a PAD with x_zp (a pad tap is real 0.0 and counts), and average
pool with count_include_pad=0 and non-SAME pads is refused (TFLite cannot exclude taps
from an explicit PAD). Dilated pools are refused (TFLite pools have no dilation).
"""
from __future__ import annotations

import numpy as np
from tflite.Padding import Padding

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.act import act_output
from edgeq.export.tflite.builder import BuiltinOperator as B
from edgeq.export.tflite.convert import refuse
from edgeq.export.tflite.ops_conv import explicit_pad, tf_padding
from edgeq.ops import implements
from edgeq.reference._common import pool_out_size
from edgeq.reference.resize import normalized, tflite_positions


def _pool(ex, node, builtin):
    x, y = node.inputs[0], node.outputs[0]
    if len(ex.shape(x)) != 4:
        raise refuse(node, "only 2-D pooling on [N, C, H, W] is exported")
    n, c, h, w = ex.shape(x)
    kh, kw = (int(k) for k in node.attr("kernel"))
    strides = [int(s) for s in node.attr("strides", [1, 1])]
    pads = [int(p) for p in node.attr("pads", [0, 0, 0, 0])]
    if any(int(d) != 1 for d in node.attr("dilations", [1, 1])):
        raise refuse(node, "dilated pooling has no TFLite equivalent")
    xq, yq = ex.quant(x), ex.quant(y)
    if (xq.scale, xq.zero_point) != (yq.scale, yq.zero_point):
        raise refuse(node, "TFLite pools need equal input and output quantization")
    out_hw = [pool_out_size(h, kh, strides[0], pads[0], pads[2], 1),
              pool_out_size(w, kw, strides[1], pads[1], pads[3], 1)]
    padding = tf_padding((h, w), (kh, kw), strides, (1, 1), pads, out_hw)
    if padding is None:
        if builtin == B.MAX_POOL_2D:
            src = explicit_pad(ex, x, pads, value=-128)
        elif int(node.attr("count_include_pad", 0)):
            src = explicit_pad(ex, x, pads, value=int(node.attr("x_zp", xq.zero_point[0])))
        else:
            raise refuse(node, f"pads {pads} are not TFLite's SAME padding and average pooling "
                               "must not count the padded taps (count_include_pad=0)")
        padding = Padding.VALID
    elif padding == Padding.SAME and builtin == B.AVERAGE_POOL_2D and int(node.attr("count_include_pad", 0)) \
            and any(pads):
        src = explicit_pad(ex, x, pads, value=int(node.attr("x_zp", xq.zero_point[0])))
        padding = Padding.VALID
    else:
        src = ex.get(x, L.NHWC)
    out, code, finish = act_output(ex, node, y)
    ex.mb.op(builtin, [src], [out], "Pool2DOptions", Padding=padding, StrideH=strides[0],
             StrideW=strides[1], FilterHeight=kh, FilterWidth=kw, FusedActivationFunction=code)
    finish()


@implements("tflite", "QMaxPool", builtins=("MAX_POOL_2D", "PAD", "PADV2", "MAXIMUM", "MINIMUM"))
def convert_maxpool(ex, node):
    _pool(ex, node, B.MAX_POOL_2D)


@implements("tflite", "QAvgPool", builtins=("AVERAGE_POOL_2D", "PAD", "MAXIMUM", "MINIMUM"))
def convert_avgpool(ex, node):
    _pool(ex, node, B.AVERAGE_POOL_2D)


@implements("tflite", "QResizeBilinear", builtins=("RESIZE_BILINEAR",))
def convert_resize_bilinear(ex, node):
    """RESIZE_BILINEAR (int8: TFLite's ResizeBilinearInteger) when the node's tables are the
    positions that kernel computes for one (align_corners, half_pixel_centers) pair."""
    x, y = node.inputs[0], node.outputs[0]
    (h, w), (oh, ow) = ex.shape(x)[2:], ex.shape(y)[2:]
    tables = [np.asarray(node.attr(k), np.int64).reshape(-1, 3) for k in ("y_table", "x_table")]
    flags = next((f for f in ((False, True), (False, False), (True, False))
                  if all(np.array_equal(t, normalized(tflite_positions(n, o, *f)))
                         for t, n, o in zip(tables, (h, w), (oh, ow)))), None)
    if flags is None:
        raise refuse(node, "its interpolation tables are not the positions TFLite's RESIZE_BILINEAR computes")
    if ex.quant(x).scale != ex.quant(y).scale or ex.quant(x).zero_point != ex.quant(y).zero_point:
        raise refuse(node, "RESIZE_BILINEAR needs equal input and output quantization")
    perm = ex.layout.setdefault(y, L.NHWC)
    size = ex.i32(f"{node.name}_size", [oh, ow])
    ex.mb.op(B.RESIZE_BILINEAR, [ex.get(x, L.NHWC), size], [ex.new_act(y, perm)], "ResizeBilinearOptions",
             AlignCorners=flags[0], HalfPixelCenters=flags[1])
