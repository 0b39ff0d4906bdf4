"""Softmax cross-entropy gradient on int8 logits, in QSoftmax's fixed point.

For logits q (int8, scale s, zero point z) and a label t, the gradient of
CE = -log softmax(s (q - z))[t] w.r.t. the real logits is p - onehot(t). The integer form
reuses QSoftmax's machinery (docs/semantics.md) with beta = 1 and a 14-bit output:

  diff = q - max(q); taps with diff < diff_min have p = 0 and stay out of the sum;
  e = exp_on_negative_values(MBQM(diff, input_mult, input_left_shift))  (Q0.31)
  sum = sum rounding_divide_by_pot(e, 12)                              (Q12.19)
  r, k = get_reciprocal(sum, 12)
  p14 = rounding_divide_by_pot(SRDHM(r, e), k + 17)      (p * 2^14: QSoftmax has k + 23
                                                           for 8 bits; 31 - 14 = 17 here)
  g = p14 - 2^14 [i == t],  exponent -14

k = 12 - clz(sum) is in [0, 12] (the largest tap contributes 2^19, so sum >= 2^19), so
the shift k + 17 is within [17, 29]. |g| <= 2^14: already a normalized 16-bit gradient
(any other gradient width is normalized from here). Example: logits (s = 0.1, z = 0)
q = (20, 0), label 0: p = softmax(2, 0) = (0.8808, 0.1192), p14 = (14431, 1953),
g = (-1953, 1953).
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import (exp_on_negative_values, get_reciprocal,
                              multiply_by_quantized_multiplier, rounding_divide_by_pot,
                              saturating_rounding_doubling_high_mul)
from edgeq.reference.softmax import softmax_params
from edgeq.training.gradient import i64

PROB_BITS = 14


def loss_params(logit_scale: float) -> dict[str, int]:
    """Compile time: QSoftmax's constants with beta = 1 for the logits' scale."""
    return softmax_params(float(logit_scale), 1.0)


def probabilities_q14(q: np.ndarray, input_mult: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """softmax of one row of int8 logits, as p * 2^14 (int64)."""
    x = i64(q).ravel()
    diff = x - x.max()
    live = diff >= diff_min
    scaled = multiply_by_quantized_multiplier(diff, input_mult, input_left_shift)
    e = np.where(live, exp_on_negative_values(np.where(live, scaled, 0)), 0)
    total = int(np.sum(rounding_divide_by_pot(e, 12)))
    r, k = get_reciprocal(total, 12)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(r, e), int(k) + 31 - PROB_BITS)


def ce_gradient(q: np.ndarray, label: int, params: dict[str, int]) -> tuple[np.ndarray, int]:
    """(mantissas shaped like q, exponent) of dCE/dlogits for one sample."""
    p = probabilities_q14(q, params["input_mult"], params["input_left_shift"], params["diff_min"])
    if not 0 <= int(label) < p.size:
        raise ValueError(f"label {label} outside [0, {p.size})")
    p[int(label)] -= 1 << PROB_BITS
    return p.reshape(np.shape(q)), -PROB_BITS
