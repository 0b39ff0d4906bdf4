"""Scales and (multiplier, shift) pairs exactly as a TFLite runtime derives them.

A .tflite file stores float32 scales, not multipliers: LiteRT and TFLite Micro recompute
every (multiplier, shift) at load time, in double precision from those float32 values,
with QuantizeMultiplier (edgeq.fixedpoint.quantize_multiplier). The quantizer uses the
same numbers for every target, so there is one quantized graph: its scales are float32
values (held in float64 arrays) and its multipliers are these formulas of them. The C
build, the integer reference and the exported .tflite therefore compute the same bytes
(docs/tflite.md), and the exporter checks each node against these functions again.

Formulas (s_* are float32 values, arithmetic in double, in TFLite's operand order):
  CONV_2D / DEPTHWISE / FULLY_CONNECTED, per channel c: (s_in * s_w[c]) / s_out
  ADD:  t = 2 max(s_a, s_b); inputs s_a / t, s_b / t; output t / (2^20 s_y)
  MUL:  (s_a * s_b) / s_y
  QUANTIZE (int8 -> int8): s_in / s_out
  SOFTMAX: beta * s_in * 2^26 (edgeq.intref.softmax.softmax_params)
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import quantize_multiplier

LEFT_SHIFT = 20  # TFLite ADD's int8 headroom shift


def f32(x) -> float:
    """The value a float32 field of a .tflite file holds, as a Python float (inf beyond
    float32's range: callers that need a finite scale check it)."""
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def f32_array(x) -> np.ndarray:
    """float32-representable values in a float64 array of x's shape."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def f32_at_least(x) -> np.ndarray:
    """The smallest float32 values >= x (a scale that must not shrink below a bound)."""
    x = np.asarray(x, dtype=np.float64)
    r = x.astype(np.float32)
    r = np.where(r.astype(np.float64) < x, np.nextafter(r, np.float32(np.inf)), r)
    return r.astype(np.float64)


def conv_multipliers(s_in: float, w_scales, s_out: float, channels: int):
    """Per-channel (mult int32[C], shift int32[C]); per-tensor weights broadcast."""
    ws = np.broadcast_to(np.asarray(w_scales, np.float64).reshape(-1), (channels,))
    pairs = [quantize_multiplier(float(s_in) * float(w) / float(s_out)) for w in ws]
    return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))


def add_multipliers(sa: float, sb: float, sy: float) -> dict:
    """QAdd's attributes. Doubling and 2^20 only move the exponent, so t and 2^20 s_y
    are exact in float32 too."""
    t = 2.0 * max(float(sa), float(sb))
    am, ash = quantize_multiplier(float(sa) / t)
    bm, bsh = quantize_multiplier(float(sb) / t)
    ym, ysh = quantize_multiplier(t / ((1 << LEFT_SHIFT) * float(sy)))
    return {"a_mult": am, "a_shift": ash, "b_mult": bm, "b_shift": bsh,
            "y_mult": ym, "y_shift": ysh, "left_shift": LEFT_SHIFT}


def mul_multiplier(sa: float, sb: float, sy: float) -> tuple[int, int]:
    return quantize_multiplier(float(sa) * float(sb) / float(sy))


def requant_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    return quantize_multiplier(float(s_in) / float(s_out))
