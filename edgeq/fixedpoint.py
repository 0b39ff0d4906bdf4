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


# ---- gemmlowp-style fixed point for QSoftmax (run time; same names in eq_fixedpoint.h) -----
#
# A Qm.n value is an int32 `raw` meaning raw * 2^-n with n = 31 - m. The product of a Qa and
# a Qb value is saturating_rounding_doubling_high_mul(raw_a, raw_b) read as Q(a+b); changing
# the format of a value ("rescale") is a saturating shift. Every constant below is
# round(2^n * c) for the real constant c it stands for (tests/test_intref_kernels.py checks
# them against that formula), so nothing here is a magic number.

# round(2^31 * exp(-2^e)) for e = -2..4: exp of each bit of a Q5.26 input above 1/4.
EXP_BARREL_MULTIPLIERS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                          (1, 290630308), (2, 39332535), (3, 720401), (4, 242))
EXP_MINUS_ONE_EIGHTH_Q31 = 1895147668  # round(2^31 * exp(-1/8))
ONE_THIRD_Q31 = 715827883              # round(2^31 / 3)
FORTY_EIGHT_OVER_17_Q29 = 1515870810   # round(2^29 * 48/17), Newton-Raphson start
MINUS_32_OVER_17_Q29 = -1010580540     # round(2^29 * -32/17)


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """x * 2^exponent: a rounding right shift for exponent <= 0, a left shift saturating to
    [INT32_MIN, INT32_MAX] for exponent > 0 (gemmlowp's SaturatingRoundingMultiplyByPOT)."""
    x = _i64(x)
    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    return np.clip(x * (1 << exponent), INT32_MIN, INT32_MAX)


def rounding_half_sum(a, b) -> np.ndarray:
    """(a + b) / 2 rounded half away from zero, in int64 so it cannot overflow."""
    s = _i64(a) + _i64(b)
    return np.where(s >= 0, (s + 1) >> 1, -((1 - s) >> 1))


def count_leading_zeros32(x) -> np.ndarray:
    """Leading zero bits of x read as uint32 (32 for 0)."""
    v = _i64(x) & 0xFFFFFFFF
    n = np.full(v.shape, 32, dtype=np.int64)
    for step in (16, 8, 4, 2, 1):  # binary search for the bit length
        big = v >= (np.int64(1) << step)
        v = np.where(big, v >> step, v)
        n = np.where(big, n - step, n)
    return n - (v > 0)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for a Q0.31 `a` in [-1/4, 0): 4th-order Taylor series around -1/8. Q0.31 out."""
    srdhm = saturating_rounding_doubling_high_mul
    x = _i64(a) + (1 << 28)  # x = a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, ONE_THIRD_Q31) + x2, 1)
    # poly = x^4/24 + x^3/6 + x^2/2; exp(a) = exp(-1/8) * (1 + x + poly)
    return EXP_MINUS_ONE_EIGHTH_Q31 + srdhm(EXP_MINUS_ONE_EIGHTH_Q31, x + poly)


def exp_on_negative_values(a) -> np.ndarray:
    """exp(a) for a Q5.26 `a` <= 0 (so a >= -32), result Q0.31 (exp(0) = INT32_MAX).

    Split a = (a mod 1/4 - 1/4) - r: exp of the first part by the series above, then one
    multiply by exp(-2^e) for each set bit e of r (a barrel shifter over e = -2..4).
    """
    a = _i64(a)
    quarter = 1 << 24  # 1/4 in Q5.26
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        a_mod_quarter_minus_quarter << 5)  # Q5.26 -> Q0.31, |value| <= 1/4: no saturation
    remainder = a_mod_quarter_minus_quarter - a
    for e, multiplier in EXP_BARREL_MULTIPLIERS:
        bit = (remainder & (1 << (26 + e))) != 0
        result = np.where(bit, saturating_rounding_doubling_high_mul(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + a) for a Q0.31 `a` in [0, 1), result Q0.31: three Newton-Raphson steps on
    the half denominator d = (1 + a) / 2 in [1/2, 1), from x0 = 48/17 - 32/17 d, in Q2.29."""
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, INT32_MAX)  # (a + 1) / 2, Q0.31
    x = FORTY_EIGHT_OVER_17_Q29 + srdhm(half_denominator, MINUS_32_OVER_17_Q29)
    for _ in range(3):
        one_minus_dx = (1 << 29) - srdhm(half_denominator, x)  # Q2.29
        x = x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus_dx), 2)  # Q4.27 -> Q2.29
    # x ~= 1/d = 2/(1+a) in Q2.29; halve it (read as Q1.30) and move to Q0.31
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal of a positive Q(x_integer_digits) value: (Q0.31 raw, num_bits_over_unit)
    with 1/x ~= raw * 2^(num_bits_over_unit - 31)."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    # x normalised to [1, 2) minus 1, as Q0.31 (uint32 arithmetic, as in TFLite)
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), num_bits_over_unit
