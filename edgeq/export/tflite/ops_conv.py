"""QConv -> CONV_2D / DEPTHWISE_CONV_2D, QGemm -> FULLY_CONNECTED.

Weights: edgeq [Co, Ci/g, kH, kW] becomes OHWI for CONV_2D and 1HWO for depthwise
(group == Ci; TFLite's output channel ic * multiplier + j is edgeq's group-major order,
so no channel reordering is needed). Per-channel scales go with quantized_dimension 0
(OHWI) or 3 (1HWO). Bias int32 carries scale s_in * s_w[c] (informative: runtimes read
the integers only). Padding: TFLite knows SAME and VALID only; edgeq's explicit pads are
SAME when they equal TFLite's split (total = max((out-1)s + eff_k - in, 0), the smaller
half first) and the output size is ceil(in/s); otherwise a PAD with x_zp (which adds
exactly 0 to every product, like edgeq's padding) then VALID.
FULLY_CONNECTED flattens its input in TFLite's byte order; when that input is an NHWC
activation, the weight columns are permuted to HWC order instead of moving the data.

QGemm is written as a 1x1 CONV_2D between two RESHAPEs, not as FULLY_CONNECTED:
LiteRT 2.3's FULLY_CONNECTED (per-tensor and per-channel alike) rescales with a single
rounding, (acc * m + 2^(t-1)) >> t with t = 31 - shift, while TFLite Micro and edgeq round
twice (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT). Measured on random
inputs: 281 of 192,000 per-channel and 52 of 35,000 per-tensor outputs off by one in
LiteRT, none in TFLM; the single-rounding formula reproduces LiteRT's FC exactly. CONV_2D
rounds twice in both runtimes, so the 1x1 conv is exact everywhere (Vela maps it to the
NPU like an FC). `export_tflite(..., gemm_as="fc")` writes FULLY_CONNECTED (exact in
TFLM only).
"""
from __future__ import annotations

import numpy as np

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.act import act_output, fused_code
from edgeq.export.tflite.builder import BuiltinOperator as B, TQuant
from edgeq.export.tflite.convert import REQUANTIZE_FIX, refuse
from edgeq.ops import implements
from edgeq.quantization.rules.multipliers import conv_multipliers
from edgeq.reference._common import pool_out_size
from tflite.Padding import Padding


def tf_padding(in_hw, k_hw, strides, dilations, pads, out_hw) -> int | None:
    """Padding.SAME / Padding.VALID when TFLite's rule reproduces edgeq's pads (top,
    left, bottom, right) and output size, else None."""
    same = valid = True
    for ax in range(2):
        n, s, ek = in_hw[ax], strides[ax], dilations[ax] * (k_hw[ax] - 1) + 1
        out_same = -(-n // s)
        total = max((out_same - 1) * s + ek - n, 0)
        same &= (pads[ax], pads[ax + 2]) == (total // 2, total - total // 2) and out_hw[ax] == out_same
        valid &= pads[ax] == 0 and pads[ax + 2] == 0
    if valid:
        return Padding.VALID
    return Padding.SAME if same else None


def explicit_pad(ex, x: str, pads, value: int | None = None) -> int:
    """PAD (value = x's zero point) or PADV2 (another int8 value) of NHWC activation x
    by edgeq pads (top, left, bottom, right); returns the padded TFLite tensor."""
    src = ex.get(x, L.NHWC)
    n, c, h, w = ex.shape(x)
    q = ex.quant(x)
    shape = (n, h + pads[0] + pads[2], w + pads[1] + pads[3], c)
    dst = ex.mb.tensor(f"{x}_padded", shape, "int8", q)
    paddings = ex.i32(f"{x}_paddings", [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
    if value is None or value == q.zero_point[0]:
        ex.mb.op(B.PAD, [src, paddings], [dst], "PadOptions")
    else:
        cv = ex.const(f"{x}_pad_value", np.array([value], np.int8), q)
        ex.mb.op(B.PADV2, [src, paddings, cv], [dst], "PadV2Options")
    return dst


def bias_tensor(ex, node, bias_name: str, co: int, s_in: float, w_scales) -> int:
    data = ex.g.const(bias_name) if bias_name else None
    data = np.zeros(co, np.int32) if data is None else np.asarray(data, np.int32).reshape(co)
    ws = np.broadcast_to(np.asarray(w_scales, np.float64).reshape(-1), (co,))
    scales = [float(np.float32(s_in * float(np.float32(w)))) for w in ws]
    return ex.const(f"{node.name}_bias", data, TQuant(scales, [0] * co, 0))


def check_multipliers(ex, node, x: str, w_name: str, co: int) -> None:
    """edgeq's per-channel (mult, shift) must be what TFLite derives from the file."""
    mult, shift = (np.asarray(ex.g.const(n)).reshape(-1) for n in node.inputs[3:5])
    m, s = conv_multipliers(ex.quant(x).scale[0], ex.g.tensors[w_name].q.scale,
                            ex.quant(node.outputs[0]).scale[0], co)
    bad = np.nonzero((np.broadcast_to(mult, (co,)) != m) | (np.broadcast_to(shift, (co,)) != s))[0]
    if bad.size:
        c = int(bad[0])
        raise refuse(node, f"channel {c} multiplier ({int(np.broadcast_to(mult, (co,))[c])}, "
                           f"{int(np.broadcast_to(shift, (co,))[c])}) differs from the ({m[c]}, {s[c]}) "
                           f"TFLite derives from the float32 scales ({bad.size} channels differ)",
                     REQUANTIZE_FIX)


def weight_quant(ex, w_name: str, axis: int) -> TQuant:
    q = ex.g.tensors[w_name].q
    scales = [float(np.float32(s)) for s in np.ravel(q.scale)]
    return TQuant(scales, [0] * len(scales), axis if len(scales) > 1 else 0)


@implements("tflite", "QConv", builtins=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "MAXIMUM", "MINIMUM"))
def convert_conv(ex, node):
    x, w_name, b_name = (node.inputs + ["", ""])[:3]
    w = ex.g.const(w_name)
    if w is None:
        raise refuse(node, "the weights are not a constant")
    if w.ndim != 4 or len(ex.shape(x)) != 4:
        raise refuse(node, "only 2-D convolutions are exported (1-D convs need a reshape "
                           "to [N, C, 1, L] first)")
    n, ci, h, wd = ex.shape(x)
    co, cig, kh, kw = w.shape
    group = int(node.attr("group", 1))
    strides = [int(s) for s in node.attr("strides", [1, 1])]
    dil = [int(d) for d in node.attr("dilations", [1, 1])]
    pads = [int(p) for p in node.attr("pads", [0, 0, 0, 0])]
    depthwise = group == ci and group > 1
    if group != 1 and not depthwise:
        raise refuse(node, f"grouped convolution (group={group}, {ci} input channels) has no "
                           "TFLite Micro kernel")
    out_hw = [pool_out_size(h, kh, strides[0], pads[0], pads[2], dil[0]),
              pool_out_size(wd, kw, strides[1], pads[1], pads[3], dil[1])]
    padding = tf_padding((h, wd), (kh, kw), strides, dil, pads, out_hw)
    if padding is None:
        src = explicit_pad(ex, x, pads)
        padding = Padding.VALID
    else:
        src = ex.get(x, L.NHWC)
    s_in = ex.quant(x).scale[0]
    check_multipliers(ex, node, x, w_name, co)
    wq = weight_quant(ex, w_name, 3 if depthwise else 0)
    if depthwise:
        wt = ex.const(w_name, np.transpose(w, (1, 2, 3, 0)).astype(np.int8), wq)  # 1HWO
    else:
        wt = ex.const(w_name, np.transpose(w, (0, 2, 3, 1)).astype(np.int8), wq)  # OHWI
    bt = bias_tensor(ex, node, b_name, co, s_in, ex.g.tensors[w_name].q.scale)
    y = node.outputs[0]
    out, code, finish = act_output(ex, node, y)
    common = dict(Padding=padding, StrideH=strides[0], StrideW=strides[1],
                  DilationHFactor=dil[0], DilationWFactor=dil[1], FusedActivationFunction=code)
    if depthwise:
        ex.mb.op(B.DEPTHWISE_CONV_2D, [src, wt, bt], [out], "DepthwiseConv2DOptions",
                 DepthMultiplier=co // ci, **common)
    else:
        ex.mb.op(B.CONV_2D, [src, wt, bt], [out], "Conv2DOptions", **common)
    finish()


@implements("tflite", "QGemm", builtins=("CONV_2D", "FULLY_CONNECTED", "RESHAPE", "MAXIMUM", "MINIMUM"))
def convert_gemm(ex, node):
    x, w_name, b_name = (node.inputs + ["", ""])[:3]
    w = ex.g.const(w_name)
    if w is None:
        raise refuse(node, "the weights are not a constant")
    co, k = w.shape
    check_multipliers(ex, node, x, w_name, co)
    xshape = ex.shape(x)
    perm = ex.layout.get(x, L.identity(len(xshape)))
    if len(xshape) > 2 and not L.is_memory_noop(xshape, perm):
        # the flattened features arrive in TFLite's byte order: permute the columns to match
        w = w.reshape((co,) + xshape[1:]).transpose((0,) + tuple(perm[1:])).reshape(co, k)
    wq = weight_quant(ex, w_name, 0)
    bt = bias_tensor(ex, node, b_name, co, ex.quant(x).scale[0], ex.g.tensors[w_name].q.scale)
    y = node.outputs[0]
    if len(ex.shape(y)) != 2:
        raise refuse(node, f"output shape {ex.shape(y)} is not [N, Co]")
    n = ex.shape(y)[0]
    if ex.options.get("gemm_as", "conv") == "fc":
        out, code, finish = act_output(ex, node, y)
        wt = ex.const(w_name, np.asarray(w, np.int8), wq)
        ex.mb.op(B.FULLY_CONNECTED, [ex.get(x), wt, bt], [out], "FullyConnectedOptions",
                 FusedActivationFunction=code)
        finish()
        return
    # 1x1 CONV_2D on [N, 1, 1, K]; a previous QGemm's [N, 1, 1, Co] result is reused as is,
    # so a chain of Gemms (ad01) needs no RESHAPE between its layers
    src4 = ex.views.get(x)
    if src4 is None:
        src4 = ex.mb.tensor(f"{x}_as_1x1", (n, 1, 1, k), "int8", ex.quant(x))
        ex.reshape_op(ex.get(x), src4, (n, 1, 1, k))
    w4 = ex.const(w_name, np.asarray(w, np.int8).reshape(co, 1, 1, k), wq)
    conv = dict(Padding=Padding.VALID, StrideH=1, StrideW=1, DilationHFactor=1, DilationWFactor=1)
    yq = ex.quant(y)
    code = fused_code(yq.scale[0], yq.zero_point[0], int(node.attr("act_min", -128)),
                      int(node.attr("act_max", 127)))
    y4 = ex.mb.tensor(f"{y}_1x1", (n, 1, 1, co), "int8", yq)
    if code is not None:
        ex.mb.op(B.CONV_2D, [src4, w4, bt], [y4], "Conv2DOptions", FusedActivationFunction=code, **conv)
        ex.layout.setdefault(y, L.identity(2))
        ex.views[y] = y4  # the [N, Co] tensor is made on demand (Exporter.get)
        return
    out, code, finish = act_output(ex, node, y)
    ex.mb.op(B.CONV_2D, [src4, w4, bt], [y4], "Conv2DOptions", FusedActivationFunction=code, **conv)
    ex.reshape_op(y4, out, (n, co))
    finish()
