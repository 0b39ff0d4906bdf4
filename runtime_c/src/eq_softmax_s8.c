/* QSoftmax, int8: TFLite's reference int8 SOFTMAX (see edgeq/intref/softmax.py for the
 * derivation). Two passes per row: max and the Q12.19 sum of exps, then the outputs.
 * The exp of each tap is recomputed in the second pass (no scratch buffer). */
#include "eq_internal.h"

#define EQ_SOFTMAX_ACC_BITS 12  /* integer bits of the sum of exps: depth <= 4095 fits */

size_t eq_softmax_s8_scratch_size(const eq_softmax_params *p)
{
    (void)p;
    return 0;
}

/* exp(beta * scale * diff) as Q0.31 for a used tap (diff >= diff_min). */
static int32_t tap_exp(const eq_softmax_params *p, int32_t diff)
{
    return exp_on_negative_values(
        multiply_by_quantized_multiplier(diff, p->input_mult, p->input_left_shift));
}

eq_status eq_softmax_s8(const eq_softmax_params *p, const int8_t *x, int8_t *y)
{
    int32_t o, d, i;
    if (p == NULL || x == NULL || y == NULL || p->outer < 1 || p->depth < 1 ||
        p->depth > 4095 || p->inner < 1 || p->input_left_shift < 0 ||
        p->input_left_shift > 30 || p->diff_min > 0) {
        return EQ_ERR_ARG;
    }
    for (o = 0; o < p->outer; ++o) {
        const int8_t *x_o = x + (size_t)o * p->depth * p->inner;
        int8_t *y_o = y + (size_t)o * p->depth * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int32_t max_v = -128, sum = 0, recip, bits_over_unit, exponent;
            for (d = 0; d < p->depth; ++d) {
                const int32_t v = x_o[d * p->inner + i];
                max_v = v > max_v ? v : max_v;
            }
            for (d = 0; d < p->depth; ++d) {
                const int32_t diff = (int32_t)x_o[d * p->inner + i] - max_v;
                if (diff >= p->diff_min) {  /* diff_min keeps diff << left_shift in int32 */
                    sum += rounding_divide_by_pot(tap_exp(p, diff), EQ_SOFTMAX_ACC_BITS);
                }
            }
            /* sum >= 2^19 (the maximum's own exp(0)), so the reciprocal is well defined */
            recip = get_reciprocal(sum, EQ_SOFTMAX_ACC_BITS, &bits_over_unit);
            exponent = bits_over_unit + 31 - 8;
            for (d = 0; d < p->depth; ++d) {
                const int32_t diff = (int32_t)x_o[d * p->inner + i] - max_v;
                int32_t out = -128;
                if (diff >= p->diff_min) {
                    const int32_t prod = saturating_rounding_doubling_high_mul(recip, tap_exp(p, diff));
                    /* exponent > 31 only for sums >= 2^28: prod / 2^exponent rounds to 0 */
                    const int32_t unsat = exponent > 31 ? 0 : rounding_divide_by_pot(prod, exponent);
                    out = clamp(unsat - 128, -128, 127);
                }
                y_o[d * p->inner + i] = (int8_t)out;
            }
        }
    }
    return EQ_OK;
}
