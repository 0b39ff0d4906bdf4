/* edgeq's integer primitives in C99: the same functions, with the same names and the same
 * results bit for bit, as edgeq/fixedpoint.py (the golden definitions and their docs).
 *
 * Integer only: no float, no division, no modulo. Every right shift of a possibly negative
 * value goes through eq_asr32/eq_asr64 (floor semantics written portably), so nothing here
 * relies on implementation-defined behaviour of >> on negative numbers.
 * Rounding is TFLite's / gemmlowp's: round half away from zero, double rounding in
 * multiply_by_quantized_multiplier for shift < 0.
 */
#ifndef EQ_FIXEDPOINT_H
#define EQ_FIXEDPOINT_H

#include <stdint.h>

/* floor(x / 2^e), 0 <= e <= 31 (63): ~x >= 0 when x < 0, and ~(~x >> e) is the floor. */
static inline int32_t eq_asr32(int32_t x, int32_t e)
{
    return x < 0 ? ~(int32_t)((uint32_t)~x >> e) : (int32_t)((uint32_t)x >> e);
}

static inline int64_t eq_asr64(int64_t x, int32_t e)
{
    return x < 0 ? ~(int64_t)((uint64_t)~x >> e) : (int64_t)((uint64_t)x >> e);
}

/* round_half_away(a * b / 2^31); the one overflow case INT32_MIN * INT32_MIN saturates. */
static inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab, t;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;                      /* |ab| <= 2^62: exact */
    t = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
    /* C's t / 2^31 truncates toward zero; the same with shifts: */
    return (int32_t)(t >= 0 ? (t >> 31) : -((-t) >> 31));
}

/* round_half_away(x / 2^exponent), 0 <= exponent <= 31. */
static inline int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return eq_asr32(x, exponent) + (remainder > threshold ? 1 : 0);
}

/* x * m * 2^(shift - 31), TFLite's MultiplyByQuantizedMultiplier. Precondition (the
 * compiler's range proof): x * 2^max(shift, 0) fits int32; -31 <= shift <= 30. */
static inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left); /* == x * 2^left in range */
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right);
}

static inline int32_t clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* round_half_away(numerator / count) as a multiply and a shift; (recip, rshift) come from
 * fixedpoint.exact_reciprocal(count, max|numerator| + count/2) at compile time, which
 * proves the result equals C's (n + count/2) / count for every reachable n. */
static inline int32_t round_half_away_div(int32_t numerator, int32_t count, int32_t recip, int32_t rshift)
{
    const int64_t mag = (int64_t)(numerator < 0 ? -numerator : numerator) + (count >> 1);
    const int32_t q = (int32_t)((mag * recip) >> rshift);  /* mag, recip >= 0 */
    return numerator >= 0 ? q : -q;
}

/* ---- gemmlowp-style fixed point for softmax (see edgeq/fixedpoint.py for the formats) --- */

/* x * 2^exponent: rounding right shift if exponent <= 0, saturating left shift if > 0. */
static inline int32_t saturating_rounding_multiply_by_pot(int32_t x, int32_t exponent)
{
    if (exponent <= 0) {
        return rounding_divide_by_pot(x, -exponent);
    }
    if (x > (INT32_MAX >> exponent)) {
        return INT32_MAX;
    }
    if (x < -(INT32_MAX >> exponent) - 1) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static inline int32_t rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + (int64_t)b;
    return (int32_t)(s >= 0 ? ((s + 1) >> 1) : -((1 - s) >> 1));
}

static inline int32_t count_leading_zeros32(uint32_t x)
{
    int32_t n = 32;
    int32_t step;
    for (step = 16; step > 0; step >>= 1) {  /* binary search for the bit length */
        if (x >= ((uint32_t)1 << step)) {
            x >>= step;
            n -= step;
        }
    }
    return n - (x > 0 ? 1 : 0);
}

/* exp(a), a Q0.31 in [-1/4, 0): Taylor series around -1/8. Result Q0.31. */
static inline int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;  /* round(2^31 exp(-1/8)) */
    const int32_t one_third = 715827883;              /* round(2^31 / 3) */
    const int32_t x = a + (1 << 28);                  /* a + 1/8 */
    const int32_t x2 = saturating_rounding_doubling_high_mul(x, x);
    const int32_t x3 = saturating_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = saturating_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = rounding_divide_by_pot(x4, 2);
    const int32_t poly = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + saturating_rounding_doubling_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a), a Q5.26 <= 0; result Q0.31 (exp(0) = INT32_MAX). */
static inline int32_t exp_on_negative_values(int32_t a)
{
    /* round(2^31 exp(-2^e)) for e = -2..4, applied for each set bit 26+e of the remainder */
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535, 720401, 242};
    const int32_t quarter = 1 << 24;                  /* 1/4 in Q5.26 */
    const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;  /* >= 0, multiple of 1/4 */
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        (int32_t)((uint32_t)a_mod_quarter_minus_quarter << 5));
    int32_t i;
    for (i = 0; i < 7; ++i) {
        if (remainder & ((int32_t)1 << (24 + i))) {
            result = saturating_rounding_doubling_high_mul(result, barrel[i]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a), a Q0.31 in [0, 1): Newton-Raphson in Q2.29. Result Q0.31. */
static inline int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
    int32_t x = 1515870810 /* 48/17 Q2.29 */
        + saturating_rounding_doubling_high_mul(half_denominator, -1010580540 /* -32/17 */);
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus_dx = (1 << 29) - saturating_rounding_doubling_high_mul(half_denominator, x);
        x = x + saturating_rounding_multiply_by_pot(saturating_rounding_doubling_high_mul(x, one_minus_dx), 2);
    }
    return saturating_rounding_multiply_by_pot(x, 1);
}

/* Reciprocal of a positive Q(x_integer_digits) value: returns Q0.31 raw r with
 * 1/x ~= r * 2^(*num_bits_over_unit - 31). */
static inline int32_t get_reciprocal(int32_t x, int32_t x_integer_digits, int32_t *num_bits_over_unit)
{
    const int32_t headroom_plus_one = count_leading_zeros32((uint32_t)x);
    const int32_t shifted_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one);
}

#endif /* EQ_FIXEDPOINT_H */
