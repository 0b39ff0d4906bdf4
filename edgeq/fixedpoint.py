"""Integer primitives of edgeq's semantics: the one Python home of the fixed-point math.

`runtime_c/include/eq_fixedpoint.h` holds the same functions with the same names; every
kernel in both worlds is written with these and nothing else. All run-time functions take
and return integer numpy arrays (int64 holding int32 values) and are vectorized.
Only `quantize_multiplier` and friends use float: they run in the compiler, never on the
device.

Rounding follows TFLite / CMSIS-NN / gemmlowp so that exported models give the same bytes
in TFLite Micro:

- saturating_rounding_doubling_high_mul(a, b) = round_half_away(a * b / 2^31), with
  the single overflow case (INT32_MIN, INT32_MIN) saturating to INT32_MAX.
- rounding_divide_by_pot(x, e) = round_half_away(x / 2^e).
- multiply_by_quantized_multiplier(x, m, shift) applies m * 2^(shift - 31):
  first x << max(shift, 0), then the high multiply, then a rounding right shift by
  max(-shift, 0). This is a *double* rounding for shift < 0, exactly as TFLite does it.

Example: the real multiplier 0.0123 is m = 1690499128, shift = -6; then
multiply_by_quantized_multiplier(1000, m, -6) == 12 (1000 * 0.0123 = 12.3).
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    a, b = _i64(a), _i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # exact: |a*b| <= 2^62
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    # C's int64 division by 2^31 truncates toward zero; emulate it without float.
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    x, exponent = _i64(x), _i64(exponent)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("rounding_divide_by_pot: exponent must be in [0, 31]")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """x * multiplier * 2^(shift-31) with TFLite's rounding; x must fit int32 after the
    left shift (the compiler's range proofs guarantee it)."""
    x, multiplier, shift = _i64(x), _i64(multiplier), _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = x * (np.int64(1) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def clamp(x, lo, hi) -> np.ndarray:
    return np.minimum(np.maximum(_i64(x), lo), hi)


# ---- compile time only (the compiler is allowed float; the device never sees it) ----------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """Real multiplier -> (int32 m in [2^30, 2^31) or 0, shift) with real ~= m * 2^(shift-31).

    Same construction as TFLite's QuantizeMultiplier (frexp, round half away from zero,
    renormalize on carry), so exported parameters are identical.
    """
    if real == 0.0:
        return 0, 0
    if real < 0:
        raise ValueError("quantize_multiplier: negative multiplier")
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # q > 0: round half away from zero
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def quantize_multiplier_array(reals) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    m = np.array([p[0] for p in pairs], dtype=np.int32).reshape(np.shape(reals))
    s = np.array([p[1] for p in pairs], dtype=np.int32).reshape(np.shape(reals))
    return m, s


def exact_reciprocal(count: int, max_numerator: int) -> tuple[int, int]:
    """(recip, rshift) with (n * recip) >> rshift == n // count for 0 <= n <= max_numerator.

    Division by a compile-time constant as a multiply and a shift (Granlund-Montgomery):
    with k = bits(max_numerator) + ceil(log2(count)) and recip = ceil(2^k / count) the
    error term is below one for every n in range. Verified exhaustively at the ends.
    """
    if count <= 0:
        raise ValueError("exact_reciprocal: count must be positive")
    nbits = max(int(max_numerator).bit_length(), 1)
    k = nbits + max(int(count - 1).bit_length(), 0)
    recip = -((-(1 << k)) // count)  # ceil
    for n in (0, 1, count - 1, count, max_numerator - 1, max_numerator):
        if n >= 0 and (n * recip) >> k != n // count:
            raise AssertionError("exact_reciprocal: bound violated")
    return recip, k


def round_half_away_div(numerator, count: int, recip: int, rshift: int) -> np.ndarray:
    """round_half_away(numerator / count) using only multiply and shift (see exact_reciprocal).

    Same value as TFLite's `(acc > 0 ? acc + count/2 : acc - count/2) / count`.
    """
    n = _i64(numerator)
    mag = np.abs(n) + count // 2
    q = (mag * recip) >> rshift
    return np.where(n >= 0, q, -q)
