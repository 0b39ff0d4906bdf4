"""The int8 output clamp (act_min, act_max) -> TFLite fused_activation_function.

TFLite does not store the clamp: each kernel recomputes it from the output tensor's
float32 scale and zero point (CalculateActivationRangeQuantized):
  RELU          [max(-128, zp), 127]
  RELU6         [max(-128, zp), min(127, zp + round(6 / s))]
  RELU_N1_TO_1  [max(-128, zp + round(-1 / s)), min(127, zp + round(1 / s))]
with the division in float32 and round half away from zero. A fused code is used only
when its interval equals edgeq's (act_min, act_max) exactly; any other clamp is written
as NONE followed by MAXIMUM / MINIMUM against an int8 constant, which clamps exactly.
"""
from __future__ import annotations

import numpy as np
from tflite.ActivationFunctionType import ActivationFunctionType as AF

from edgeq.export.tflite.builder import BuiltinOperator as B


def _q(zp: int, scale: float, f: float) -> int:
    v = np.float32(f) / np.float32(scale)
    return int(zp + np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)))


def tflite_ranges(scale: float, zp: int) -> dict[int, tuple[int, int]]:
    lo, hi = -128, 127
    return {
        AF.NONE: (lo, hi),
        AF.RELU: (max(lo, zp), hi),
        AF.RELU6: (max(lo, zp), min(hi, _q(zp, scale, 6.0))),
        AF.RELU_N1_TO_1: (max(lo, _q(zp, scale, -1.0)), min(hi, _q(zp, scale, 1.0))),
    }


def fused_code(scale: float, zp: int, act_min: int, act_max: int) -> int | None:
    for code, rng in tflite_ranges(scale, zp).items():
        if rng == (act_min, act_max):
            return code
    return None


def act_output(ex, node, out: str):
    """(tflite tensor the op writes, fused code, finish()) for node output `out`.

    finish() must be called right after the op is appended: it emits the exact clamp ops
    when no fused code matches."""
    lo, hi = int(node.attr("act_min", -128)), int(node.attr("act_max", 127))
    q = ex.quant(out)
    code = fused_code(q.scale[0], q.zero_point[0], lo, hi)
    if code is not None:
        return ex.new_act(out), code, lambda: None
    tmp = ex.new_act(out, suffix="_unclamped")
    final = ex.new_act(out)

    def finish():
        src = tmp
        if lo > -128:
            mid = ex.new_act(out, suffix="_max") if hi < 127 else final
            c = ex.const(f"{out}_act_min", np.array([lo], np.int8), q)
            ex.mb.op(B.MAXIMUM, [src, c], [mid])
            src = mid
        if hi < 127:
            c = ex.const(f"{out}_act_max", np.array([hi], np.int8), q)
            ex.mb.op(B.MINIMUM, [src, c], [final])
    return tmp, AF.NONE, finish
