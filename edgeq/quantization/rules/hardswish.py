"""HardSwish as TFLite's int8 HARD_SWISH kernel computes it, tabulated at compile time.

edgeq's other tables round the float function exactly; TFLite's HARD_SWISH is a 16-bit
fixed-point evaluation whose last bit differs from that on a few inputs (49 of 25,600
entries over tests/test_tflite_oracle_activations.py's 100 parameter sets, 1 LSB each). The table here is that kernel
evaluated on all 256 int8 inputs, so an edgeq HardSwish equals TFLite's (LiteRT and
TFLite Micro alike) and exports as the HARD_SWISH builtin. The device still does one
table lookup per element; the fixed-point steps below run in the compiler only.

Parameters, as the kernel's Prepare derives them from the float32 scales:
  hires_input_scale = s_in / 128, output_multiplier = hires / s_out and
  reluish_multiplier = hires / (3 / 32768), each a float32 quotient, then
  QuantizeMultiplier and a rounding downscale of the 31-bit multiplier to 15 bits.
TFLite refuses an output multiplier above 1 (output_multiplier_exponent > 0, an output
step 128 times finer than the input's); `hard_swish_table` returns None there and the
quantizer keeps the exactly rounded table (exported as a GATHER).

Per input (int16 arithmetic, gemmlowp's rounding):
  v = (x - zp_in) * 128
  pre = SRDHM16(v, out_m)                      the value on the output scale, unshifted
  r = v rescaled by reluish (m, e) with saturation, to [-1, 1] on a 2^15 scale
  r = (r + 2^15) >> 1                          relu6(x + 3) / 6 in [0, 1]
  y = RDBPOT16(SDHM16(r, pre), -out_e) + zp_out, clamped to int8
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import quantize_multiplier
from edgeq.ir import QParams

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def _downscale_to_int16(m32: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: round the Q31 multiplier to Q15."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return INT16_MAX
    return (m32 + (1 << 15)) >> 16


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16 (C division truncates)."""
    ab = a.astype(np.int64) * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    t = ab + nudge
    high = np.where(t >= 0, t >> 15, -((-t) >> 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, _wrap16(high))


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's SaturatingDoublingHighMul on int16: the high half truncated towards zero."""
    ab = a.astype(np.int64) * b
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, _wrap16(high))


def _rdbpot16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT instantiated for int16: its mask and threshold are
    int16 values too (an exponent above 15 wraps them, as the C++ template does)."""
    mask = int(_wrap16(np.int64((1 << exponent) - 1)))
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return _wrap16((x >> exponent) + (remainder > threshold))


def _saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(x.astype(np.int64) * (1 << amount), INT16_MIN, INT16_MAX)


def hard_swish_params(s_in: float, s_out: float) -> tuple[int, int, int, int] | None:
    """(out_m16, out_exp, reluish_m16, reluish_exp), or None when TFLite refuses them."""
    f = np.float32
    hires = f(1.0 / 128.0) * f(s_in)
    out_m, out_e = quantize_multiplier(float(f(hires / f(s_out))))
    if out_e > 0:
        return None
    rel_m, rel_e = quantize_multiplier(float(f(hires / (f(3.0) / f(32768.0)))))
    return _downscale_to_int16(out_m), out_e, _downscale_to_int16(rel_m), rel_e


def hard_swish_table(qx: QParams, qy: QParams) -> np.ndarray | None:
    """TFLite HARD_SWISH on every int8 input, as a 256-entry int8 table (index x + 128)."""
    params = hard_swish_params(float(qx.scale), float(qy.scale))
    if params is None:
        return None
    out_m, out_e, rel_m, rel_e = params
    v = (np.arange(-128, 128, dtype=np.int64) - int(qx.zero_point)) * 128
    pre = _srdhm16(v, out_m)
    r = v
    if rel_e > 0:
        r = _saturating_left_shift16(r, rel_e - 1)
    r = _srdhm16(r, rel_m)
    if rel_e > 0:
        r = _saturating_left_shift16(r, 1)
    if rel_e < 0:
        r = _rdbpot16(r, -rel_e)
    r = (r + (1 << 15)) >> 1
    y = _rdbpot16(_sdhm16(r, pre), -out_e) + int(qy.zero_point)
    return np.clip(y, -128, 127).astype(np.int8)
