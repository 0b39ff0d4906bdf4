"""QSoftmax: TFLite's int8 SOFTMAX, reference kernel, bit for bit.

Per row (the softmax axis, moved last):
  diff = x - max(row), in [-255, 0];
  taps with diff < diff_min output -128 and add nothing to the sum;
  the others: s = MBQM(diff, input_mult, input_left_shift) read as Q5.26 (beta * scale *
  diff, clamped by diff_min to > -32), e = exp_on_negative_values(s) in Q0.31,
  sum of e rescaled to Q12.19 (rounding shift by 12), r, k = get_reciprocal(sum, 12),
  y = rounding_divide_by_pot(SRDHM(r, e), k + 31 - 8) - 128, clamped to int8.
Output scale 1/256, zero point -128 (TFLite's requirement for int8 softmax).

The final shift k + 23 exceeds 31 only when the sum is >= 2^28, i.e. 512+ taps near the
maximum; every probability is then below 1/512 and SRDHM(r, e) < 2^31, so the exact
rounding is 0 and we define the result so (TFLite shifts an int32 by >= 32 there, which
is undefined behaviour in C, and LiteRT's reference kernel aborts). Rows are limited to
4095 taps (the Q12.19 sum fits int32).
"""
from __future__ import annotations


import numpy as np

from edgeq.fixedpoint import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from edgeq.reference._common import i64, to_int8
from edgeq.ops import implements

SCALED_DIFF_INTEGER_BITS = 5   # the exp input is Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exps is Q12.19
MAX_DEPTH = 4095


def softmax_params(input_scale: float, beta: float = 1.0) -> dict[str, int]:
    """Compile-time helper: {input_mult, input_left_shift, diff_min} for an int8 input of
    `input_scale` (TFLite's PreprocessSoftmaxScaling + CalculateInputRadius).

    The real multiplier beta * scale * 2^26 maps an input difference to Q5.26; it is capped
    at 2^31 - 1 (then every non-maximal tap rounds to 0 anyway) and must exceed 1."""
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise ValueError(f"softmax_params: beta * scale = {beta * input_scale} is too small")
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise AssertionError("softmax_params: multiplier > 1 must have a left shift >= 0")
    # largest |diff| whose rescaled value stays below 32 (Q5.26 cannot hold -32 - eps)
    radius = (((1 << SCALED_DIFF_INTEGER_BITS) - 1) << (31 - SCALED_DIFF_INTEGER_BITS)) >> left_shift
    return {"input_mult": int(mult), "input_left_shift": int(left_shift), "diff_min": -int(radius)}


def softmax_rows(x: np.ndarray, input_mult: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """Softmax over the last axis of an int8 array, TFLite's reference algorithm."""
    xi = i64(x)
    if xi.shape[-1] > MAX_DEPTH:
        raise ValueError(f"QSoftmax: {xi.shape[-1]} taps per row exceed {MAX_DEPTH}")
    diff = xi - xi.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    # diff_min guarantees |diff| << left_shift < 2^31 where it is used; elsewhere use 0
    scaled = multiply_by_quantized_multiplier(np.where(used, diff, 0), input_mult, input_left_shift)
    exps = exp_on_negative_values(scaled)
    terms = np.where(used, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0)
    total = terms.sum(axis=-1, keepdims=True)
    recip, bits_over_unit = get_reciprocal(total, ACCUMULATION_INTEGER_BITS)
    prod = saturating_rounding_doubling_high_mul(recip, exps)
    exponent = bits_over_unit + 31 - 8
    exponent = np.broadcast_to(exponent, prod.shape)
    unsat = np.where(exponent > 31, 0, rounding_divide_by_pot(prod, np.minimum(exponent, 31)))
    y = np.where(used, np.clip(unsat - 128, -128, 127), -128)
    return to_int8(y)


@implements("reference", "QSoftmax")
def qsoftmax(node, x):
    axis = int(node.attr("axis", -1)) % x.ndim
    y = softmax_rows(np.moveaxis(x, axis, -1), int(node.attr("input_mult")),
                     int(node.attr("input_left_shift")), int(node.attr("diff_min")))
    return np.ascontiguousarray(np.moveaxis(y, -1, axis))


