"""Conv -> QConv, Gemm -> QGemm (TFLite CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED).

Weights: symmetric per output channel (or per tensor), edgeq.quantize_weights, with the
layer's bits (ctx.bits_for: 8, or 4 with values in [-7, 7]; stored in an int8 array).
Bias: int32 = round_half_even(b / (s_in * s_w[c])), zero point 0.
Requant: per channel, real multiplier s_in * s_w[c] / s_out -> (mult, shift), from the
float32 scales as TFLite derives it (multipliers.conv_multipliers).

Overflow proof, per output channel c (asserted here for every layer): |x - x_zp| <= 255,
so |acc_c| <= 255 * sum|w_c| + |bias_c| <= K * 255 * qmax + |bias_c| with K = Ci/group *
kH * kW (or K of the Gemm), and that must stay below 2^31 after the requantization's left
shift: a channel whose real multiplier s_in * s_w[c] / s_out is >= 1 is encoded with
shift_c > 0, and MultiplyByQuantizedMultiplier (TFLite, CMSIS-NN and every edgeq lowering)
computes acc_c * 2^shift_c in int32 before the doubling high multiply. So each channel's
bound is checked with its own bias and its own shift (`overflowing_channels`); combining
one channel's bias with another's shift refused sound layers.

A channel whose weights are tiny but whose bias is large would break the bound (its bias
in units of s_in * s_w[c] explodes); such a channel's weight scale is raised until its bias
fits. That costs nothing measurable: the channel's output is dominated by its bias, and
its weights are still quantized with the raised scale.

A dead channel (all weights zero, e.g. after BatchNorm folding) computes only its bias;
its weight scale is free, and is set so its multiplier is about 2^-8: the bias is then
held to 1/256 of an output step, and the channel never needs a left shift.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import QParams
from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext, fused_clamp, scalar
from edgeq.quantization.rules.multipliers import conv_multipliers, f32_array, f32_at_least
from edgeq.quantization.weights import quantize_with_scales, weight_scales

INT32_LIMIT = (1 << 31) - 1
DEAD_CHANNEL_MULTIPLIER = 2.0 ** -8  # see the module doc


@implements("quantize", "Conv", emits=("QConv",))
@implements("quantize", "Gemm", emits=("QGemm",))
def quantize_conv_gemm(ctx: QuantContext, node) -> None:
    x, w_name, b_name = (node.inputs + ["", ""])[:3]
    W = ctx.fconst(w_name)
    if W is None:
        raise EdgeqError(f"{node.op} node {node.name!r} has a non-constant weight input {w_name!r}",
                         "export the model with constant weights (do_constant_folding)")
    B = ctx.fconst(b_name) if b_name else None
    B = np.zeros(W.shape[0]) if B is None else np.asarray(B, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    bits = ctx.bits_for(node.name)
    qmax = (1 << (bits - 1)) - 1
    x = ctx.int8_input(x)
    qx = ctx.qp(x)
    qy = ctx.act_params(node.outputs[0])
    s_in, s_out = scalar(qx.scale), scalar(qy.scale)

    K = int(np.prod(W.shape[1:]))
    headroom = INT32_LIMIT - K * 255 * qmax  # what the bias may use
    if headroom <= 1:
        raise EdgeqError(f"{node.op} node {node.name!r}: K = {K} inputs per output can overflow "
                         f"the int32 accumulator ({K} * 255 * {qmax} >= 2^31)",
                         "split the layer or use fewer weight bits")
    scales = weight_scales(W, bits, ctx.per_channel, axis=0)
    dead = ~np.any(W.reshape(W.shape[0], -1) != 0, axis=1) if ctx.per_channel else np.zeros(0, bool)
    if np.any(dead):
        scales = np.where(dead, f32_array(s_out / s_in * DEAD_CHANNEL_MULTIPLIER), scales)
    # Smallest weight scale whose int32 bias still fits the headroom (see module doc).
    # (float32, like every scale of the graph; rounded up so the bias still fits)
    need = np.abs(B) / (s_in * (headroom - 1))
    raised = f32_at_least(np.maximum(scales, need if ctx.per_channel else np.max(need)))
    qw = quantize_with_scales(W, raised, bits, axis=0)
    s_w = np.broadcast_to(raised, (W.shape[0],)).astype(np.float64)
    bias = np.round(B / (s_in * s_w)).astype(np.int64)
    mult, shift = conv_multipliers(s_in, s_w, s_out, W.shape[0])
    bounds = accumulator_bounds(qw, bias)
    bad = overflowing_channels(bounds, shift)
    if bad.size:
        c = int(bad[0])
        real = float(s_in * s_w[c] / s_out)
        shifted = (f", shifted left by {int(shift[c])} because its requantization multiplier "
                   f"{real:.3g} is >= 1," if shift[c] > 0 else "")
        more = f" (and {bad.size - 1} more channels)" if bad.size > 1 else ""
        raise EdgeqError(f"{node.op} node {node.name!r}, output channel {c}{more}: the int32 accumulator can reach "
                         f"{int(bounds[c])} (bias {int(bias[c])}){shifted} which overflows 2^31",
                         "the layer's calibrated output range is far narrower than this channel can produce: "
                         "calibrate with data that exercises the layer, or check its weights and bias")
    wq = QParams(raised, np.zeros(np.shape(raised), np.int64), bits=bits,
                 axis=0 if ctx.per_channel else None)
    inputs = [x, ctx.add_const(w_name, qw, wq), ctx.add_i32(f"{node.name}_bias", bias),
              ctx.add_i32(f"{node.name}_mult", mult), ctx.add_i32(f"{node.name}_shift", shift)]
    y = ctx.add_act(node.outputs[0], qy)
    act_min, act_max = fused_clamp(ctx, node, qy)
    attrs = {"x_zp": int(qx.zero_point), "y_zp": int(qy.zero_point),
             "act_min": act_min, "act_max": act_max}
    if node.op == "Conv":
        attrs = {"strides": list(node.attr("strides", [1, 1])), "pads": list(node.attr("pads", [0] * 4)),
                 "dilations": list(node.attr("dilations", [1, 1])), "group": int(node.attr("group", 1)),
                 **attrs}
    ctx.add_node("QConv" if node.op == "Conv" else "QGemm", node.name, inputs, [y], attrs)
    bound = int(np.max(bounds, initial=0))
    ctx.record(node.name, op=node.op, K=K, weight_bits=bits, acc_bound=bound, in_scale=s_in, out_scale=s_out,
               weight_range=[float(W.min()), float(W.max())],
               weight_scale_range=[float(s_w.min()), float(s_w.max())],
               scales_raised_for_bias=int(np.sum(raised > scales)),
               bias_max_abs=int(np.max(np.abs(bias), initial=0)),
               dead_channels=int(np.sum(dead)), left_shift_channels=int(np.sum(shift > 0)),
               multiplier_range=[float((s_in * s_w / s_out).min()), float((s_in * s_w / s_out).max())])


def accumulator_bounds(qw: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per output channel (axis 0 of qw), the largest |accumulator| any int8 input gives:
    255 * sum|w_c| + |bias_c| (int64)."""
    co = qw.shape[0]
    w = np.abs(np.asarray(qw, np.int64).reshape(co, -1)).sum(axis=1)
    return 255 * w + np.abs(np.broadcast_to(np.asarray(bias, np.int64), (co,)))


def overflowing_channels(bounds: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Channels whose accumulator bound, shifted left by their own max(shift, 0) as
    MultiplyByQuantizedMultiplier does before the high multiply, reaches 2^31."""
    shift = np.broadcast_to(np.asarray(shift, np.int64), bounds.shape)
    return np.nonzero(bounds.astype(object) << np.maximum(shift, 0).astype(object) >= (1 << 31))[0]
