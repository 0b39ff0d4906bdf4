/* Test shim: the static inline primitives of eq_fixedpoint.h as exported, vectorised
 * functions so tests can compare them with edgeq/fixedpoint.py on the same inputs. */
#include <stdint.h>

#include "eq_fixedpoint.h"

void shim_srdhm(int32_t n, const int32_t *a, const int32_t *b, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = saturating_rounding_doubling_high_mul(a[i], b[i]);
}

void shim_rdbp(int32_t n, const int32_t *x, const int32_t *e, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = rounding_divide_by_pot(x[i], e[i]);
}

void shim_mbqm(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = multiply_by_quantized_multiplier(x[i], m[i], s[i]);
}

void shim_rhad(int32_t n, const int32_t *x, const int32_t *count, const int32_t *recip,
               const int32_t *rshift, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = round_half_away_div(x[i], count[i], recip[i], rshift[i]);
}

void shim_srmpot(int32_t n, const int32_t *x, const int32_t *e, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = saturating_rounding_multiply_by_pot(x[i], e[i]);
}

void shim_unary(int32_t which, int32_t n, const int32_t *x, int32_t *y)
{
    int32_t i, bits;
    for (i = 0; i < n; ++i) {
        switch (which) {
        case 0: y[i] = exp_on_negative_values(x[i]); break;
        case 1: y[i] = one_over_one_plus_x_for_x_in_0_1(x[i]); break;
        case 2: y[i] = count_leading_zeros32((uint32_t)x[i]); break;
        case 3: y[i] = exp_on_interval_between_negative_one_quarter_and_0_excl(x[i]); break;
        case 4: y[i] = get_reciprocal(x[i], 12, &bits); y[n + i] = bits; break;
        default: y[i] = rounding_half_sum(x[i], x[n + i]); break;
        }
    }
}
