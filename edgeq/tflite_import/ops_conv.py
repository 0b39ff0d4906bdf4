"""CONV_2D, DEPTHWISE_CONV_2D -> QConv; FULLY_CONNECTED -> QGemm.

Weights come as they are: CONV_2D's OHWI becomes [Co, Ci/group, kH, kW], DEPTHWISE's
1HWO becomes [Co, 1, kH, kW] (TFLite's output channel ic * multiplier + j is edgeq's
group-major order). Bias int32 as stored (zeros when absent).

Multipliers, as TFLite Micro derives them when it prepares each op: per channel (or once
for per-tensor weights), (s_in * s_w[c]) / s_out in double from the float32 scales
(multipliers.conv_multipliers, the quantizer's own), for CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED alike. (TFLite's GetQuantizedConvolutionMultipler takes the product in
float32 first; TFLite Micro's FULLY_CONNECTED does not use it: tests/test_tflite_import.py
separates the two on accumulators where they round differently.)
Padding: SAME splits total = max((out - 1) s + eff_k - in, 0) with the smaller half first,
like TFLite's ComputePaddingHeightWidth; taps outside the input add 0 in both.

Checked here, as the quantizer checks its own layers (docs/semantics.md): weights are
symmetric int8 in [-127, 127]; per output channel, K * 255 * max|w| + |bias| shifted left by
the channel's multiplier exponent (when the multiplier exceeds 1) fits int32.
"""
from __future__ import annotations

import numpy as np

from edgeq.reference._common import pool_out_size
from edgeq.ir import QParams, Tensor
from edgeq.ops import implements
from edgeq.quantization.rules.multipliers import conv_multipliers
from edgeq.tflite_import.builder import Importer, op_error
from edgeq.tflite_import.reader import TOp

INT32_LIMIT = 1 << 31


def tflite_pads(in_hw, k_hw, strides, dilations, same: bool) -> list[int]:
    """edgeq pads (top, left, bottom, right) of TFLite's SAME / VALID padding."""
    begin, end = [], []
    for n, k, s, d in zip(in_hw, k_hw, strides, dilations):
        ek = d * (k - 1) + 1
        out = -(-n // s) if same else -(-(n - ek + 1) // s)
        total = max((out - 1) * s + ek - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def weights(imp: Importer, op: TOp, index: int, to_edgeq: tuple[int, ...], axis_in_file: int):
    """(int8 weights in edgeq's layout, their per-channel QParams on axis 0)."""
    t = imp.t(index)
    if t.data is None or t.dtype != "int8":
        raise op_error(op, f"weights {t.name!r} are not a constant int8 tensor",
                       "convert the model with int8 weights (full integer quantization)")
    if not t.quantized or np.any(t.zero_point != 0):
        raise op_error(op, f"weights {t.name!r} are not symmetric (zero point != 0)",
                       "convert with TFLite's default int8 scheme (symmetric weights)")
    if np.any(t.data == -128):
        raise op_error(op, f"weights {t.name!r} hold -128 (TFLite's int8 weights are [-127, 127])",
                       "convert the model with the TFLite converter's int8 scheme")
    w = np.ascontiguousarray(np.transpose(t.data, to_edgeq))
    co = w.shape[0]
    if t.scale.size not in (1, co) or (t.scale.size > 1 and t.quantized_dimension != axis_in_file):
        raise op_error(op, f"weights {t.name!r} are quantized along axis {t.quantized_dimension}, "
                           "not per output channel")
    scale = np.broadcast_to(t.scale, (co,)).copy()
    return w, QParams(scale, np.zeros(co, np.int64), axis=0) if t.scale.size > 1 else QParams(t.scale[0], 0)


def bias(imp: Importer, op: TOp, co: int) -> np.ndarray:
    index = op.inputs[2] if len(op.inputs) > 2 else -1
    if index < 0:
        return np.zeros(co, np.int32)
    t = imp.t(index)
    if t.data is None or t.dtype != "int32":
        raise op_error(op, f"bias {t.name!r} is not a constant int32 tensor",
                       "convert with full integer quantization (int32 biases)")
    return t.data.reshape(co).astype(np.int32)


def check_accumulator(op: TOp, w: np.ndarray, b: np.ndarray, shift: np.ndarray) -> int:
    """The per-channel int32 proof; returns the largest bound."""
    co = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    wmax = np.abs(w.reshape(co, -1).astype(np.int64)).max(axis=1)
    bound = k * 255 * wmax + np.abs(b.astype(np.int64))
    shifted = bound << np.maximum(shift.astype(np.int64), 0)
    bad = np.nonzero(shifted >= INT32_LIMIT)[0]
    if bad.size:
        c = int(bad[0])
        raise op_error(op, f"output channel {c} can overflow int32 (accumulator bound {int(bound[c])}, "
                           f"multiplier exponent {int(shift[c])})",
                       "this model relies on int32 wrap-around; edgeq refuses it (docs/semantics.md)")
    return int(bound.max(initial=0))


def _conv(imp: Importer, op: TOp, depthwise: bool) -> None:
    o = op.options
    x_i, w_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    tx, ty = imp.t(x_i), imp.t(y_i)
    w, wq = weights(imp, op, w_i, (3, 0, 1, 2) if depthwise else (0, 3, 1, 2), 3 if depthwise else 0)
    co, cig, kh, kw = w.shape
    ci = tx.shape[3]
    group = ci if depthwise else ci // cig
    if group * cig != ci or co % group:
        raise op_error(op, f"weights {w.shape} do not fit {ci} input channels")
    strides = [o.StrideH(), o.StrideW()]
    dil = [o.DilationHFactor(), o.DilationWFactor()]
    pads = tflite_pads(tx.shape[1:3], (kh, kw), strides, dil, same=o.Padding() == 0)
    out_hw = [pool_out_size(tx.shape[1], kh, strides[0], pads[0], pads[2], dil[0]),
              pool_out_size(tx.shape[2], kw, strides[1], pads[1], pads[3], dil[1])]
    if tuple(ty.shape) != (tx.shape[0], *out_hw, co):
        raise op_error(op, f"output shape {ty.shape} is not the {out_hw} TFLite's padding gives")
    qx, qy = imp.qparams(tx), imp.qparams(ty)
    b = bias(imp, op, co)
    mult, shift = conv_multipliers(float(qx.scale), wq.scale, float(qy.scale), co)
    bound = check_accumulator(op, w, b, shift)
    act_min, act_max = imp.clamp(op, o.FusedActivationFunction(), qy)
    x = imp.nchw(x_i)
    name = f"{op.builtin.lower()}_{op.index}"
    inputs = [x, imp.const(f"{name}_w", w.astype(np.int8), wq), imp.i32(f"{name}_bias", b),
              imp.i32(f"{name}_mult", mult), imp.i32(f"{name}_shift", shift)]
    y = imp.activation(y_i, nchw=True)
    imp.node("QConv", name, inputs, [y], {
        "strides": strides, "pads": pads, "dilations": dil, "group": group,
        "x_zp": int(qx.zero_point), "y_zp": int(qy.zero_point), "act_min": act_min, "act_max": act_max})
    imp.record(name, op=op.builtin, K=int(cig * kh * kw), weight_bits=8, acc_bound=bound,
               in_scale=float(qx.scale), out_scale=float(qy.scale))


@implements("tflite-import", "CONV_2D", emits=("QConv",))
def conv_2d(imp: Importer, op: TOp) -> None:
    _conv(imp, op, depthwise=False)


@implements("tflite-import", "DEPTHWISE_CONV_2D", emits=("QConv",))
def depthwise_conv_2d(imp: Importer, op: TOp) -> None:
    _conv(imp, op, depthwise=True)


@implements("tflite-import", "FULLY_CONNECTED", emits=("QGemm", "QReshape"))
def fully_connected(imp: Importer, op: TOp) -> None:
    o = op.options
    if o is not None and o.WeightsFormat() != 0:
        raise op_error(op, "weights in the shuffled 4x16 format", "convert with the default weights format")
    x_i, w_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    tx, ty = imp.t(x_i), imp.t(y_i)
    w, wq = weights(imp, op, w_i, (0, 1), 0)
    if w.ndim != 2:
        raise op_error(op, f"weights of shape {w.shape} are not [Co, K]")
    if wq.per_channel:
        raise op_error(op, "per-channel weights (edgeq imports per-tensor FULLY_CONNECTED: TFLite Micro's "
                           "per-channel multipliers are not checked against edgeq yet)",
                       "convert with per-tensor fully connected weights (the converter's default)")
    co, k = w.shape
    qx, qy = imp.qparams(tx), imp.qparams(ty)
    b = bias(imp, op, co)
    mult, shift = conv_multipliers(float(qx.scale), wq.scale, float(qy.scale), co)
    bound = check_accumulator(op, w, b, shift)
    act_min, act_max = imp.clamp(op, 0 if o is None else o.FusedActivationFunction(), qy)
    name = f"fully_connected_{op.index}"
    x = imp.plain(x_i)
    if len(tx.shape) != 2:
        flat = imp.g.unique_name(f"{x}_flat")
        imp.g.add_tensor(Tensor(flat, (int(np.prod(tx.shape)) // k, k), "int8", None, qx))
        imp.node("QReshape", f"{name}_flatten", [x], [flat], {"shape": [-1, k]})
        x = flat
    inputs = [x, imp.const(f"{name}_w", w.astype(np.int8), wq), imp.i32(f"{name}_bias", b),
              imp.i32(f"{name}_mult", mult), imp.i32(f"{name}_shift", shift)]
    attrs = {"x_zp": int(qx.zero_point), "y_zp": int(qy.zero_point), "act_min": act_min, "act_max": act_max}
    if len(ty.shape) == 2:
        imp.node("QGemm", name, inputs, [imp.activation(y_i, nchw=False)], attrs)
    else:  # keep_num_dims: [.., Co] from the [N, Co] product
        flat_y = imp.g.unique_name(f"{name}_out")
        imp.g.add_tensor(Tensor(flat_y, (imp.g.tensors[x].shape[0], co), "int8", None, qy))
        imp.node("QGemm", name, inputs, [flat_y], attrs)
        imp.node("QReshape", f"{name}_unflatten", [flat_y], [imp.activation(y_i, nchw=False)],
                 {"shape": [-1] + list(ty.shape[1:])})
    imp.record(name, op=op.builtin, K=k, weight_bits=8, acc_bound=bound,
               in_scale=float(qx.scale), out_scale=float(qy.scale))
