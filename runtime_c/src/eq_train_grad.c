/* Training: gradient normalization, the clamp mask and the softmax cross-entropy gradient
 * (edgeq/training/gradient.py, rules/clamp.py, loss.py). */
#include "eq_train.h"

eq_status eq_train_normalize(const int32_t *acc, int32_t n, int32_t e_in, int32_t bits, int32_t stochastic,
                             eq_draws *draws, int16_t *m, int32_t *e_out)
{
    uint32_t peak = 0;
    int32_t i, r;
    if (acc == NULL || m == NULL || e_out == NULL || n < 1 || (bits != 8 && bits != 16) ||
        (stochastic && draws == NULL)) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < n; ++i) {
        const uint32_t mag = acc[i] < 0 ? 0u - (uint32_t)acc[i] : (uint32_t)acc[i];
        peak = mag > peak ? mag : peak;
    }
    if (peak == 0) {
        for (i = 0; i < n; ++i) {
            m[i] = 0;
        }
        *e_out = e_in;
        return EQ_OK;
    }
    r = eq_bit_length32(peak - 1u) - (bits - 2);
    for (i = 0; i < n; ++i) {
        int64_t v;
        if (r > 0) {
            uint32_t draw = 0;
            if (stochastic) {
                draw = eq_draw(draws, (uint32_t)i);
            }
            v = eq_round_shift64(acc[i], r, stochastic ? &draw : NULL);
        } else {
            v = (int64_t)acc[i] * ((int64_t)1 << -r);  /* exact: |acc| << -r <= 2^(bits-2) */
        }
        m[i] = (int16_t)v;
    }
    if (r > 0 && stochastic) {
        draws->counter += (uint32_t)n;
    }
    *e_out = e_in + r;
    return EQ_OK;
}

eq_status eq_train_mask(int16_t *m, const int8_t *y, int32_t n, int32_t use_lo, int32_t lo,
                        int32_t use_hi, int32_t hi)
{
    int32_t i;
    if (m == NULL || y == NULL || n < 1) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < n; ++i) {
        if ((use_lo && y[i] <= lo) || (use_hi && y[i] >= hi)) {
            m[i] = 0;
        }
    }
    return EQ_OK;
}

#define EQ_CE_PROB_BITS 14

eq_status eq_train_ce_grad_s8(const int8_t *logits, int32_t classes, int32_t label, int32_t input_mult,
                              int32_t input_left_shift, int32_t diff_min, int32_t *acc)
{
    int32_t i, max_v = -128, sum = 0, recip, bits_over_unit;
    if (logits == NULL || acc == NULL || classes < 1 || classes > 4095 || label < 0 || label >= classes ||
        input_left_shift < 0 || input_left_shift > 30 || diff_min > 0) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < classes; ++i) {
        max_v = logits[i] > max_v ? logits[i] : max_v;
    }
    /* first pass: the Q0.31 exps, kept in acc, and their Q12.19 sum */
    for (i = 0; i < classes; ++i) {
        const int32_t diff = (int32_t)logits[i] - max_v;
        acc[i] = diff >= diff_min
            ? exp_on_negative_values(multiply_by_quantized_multiplier(diff, input_mult, input_left_shift))
            : 0;
        sum += rounding_divide_by_pot(acc[i], 12);
    }
    recip = get_reciprocal(sum, 12, &bits_over_unit);  /* bits_over_unit in [0, 12] */
    for (i = 0; i < classes; ++i) {
        acc[i] = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(recip, acc[i]),
                                        bits_over_unit + 31 - EQ_CE_PROB_BITS);
    }
    acc[label] -= (int32_t)1 << EQ_CE_PROB_BITS;
    return EQ_OK;
}

eq_status eq_train_widen(const int16_t *m, int32_t n, int32_t *acc)
{
    int32_t i;
    if (m == NULL || acc == NULL || n < 1) {
        return EQ_ERR_ARG;
    }
    for (i = n - 1; i >= 0; --i) {  /* from the end: acc may alias m */
        acc[i] = m[i];
    }
    return EQ_OK;
}

eq_status eq_train_grad_sum(const int16_t *a, int32_t ea, const int16_t *b, int32_t eb, int32_t n,
                            int32_t stochastic, eq_draws *draws, int32_t *acc, int32_t *e_out)
{
    const int32_t e = ea > eb ? ea : eb;
    const int32_t r = e - (ea < eb ? ea : eb);   /* the smaller exponent's side is rounded by r */
    const int16_t *lo = ea < eb ? a : b;          /* (when ea == eb, r = 0: nothing rounds) */
    int32_t i;
    if (a == NULL || b == NULL || acc == NULL || e_out == NULL || n < 1 || (stochastic && draws == NULL)) {
        return EQ_ERR_ARG;
    }
    for (i = n - 1; i >= 0; --i) {  /* from the end: acc may alias b (b[i] is read before its bytes are written) */
        int64_t x = a[i], y = b[i];
        if (r > 0) {
            uint32_t draw = 0;
            int64_t *side = lo == a ? &x : &y;
            if (stochastic) {
                draw = eq_draw(draws, (uint32_t)i);
            }
            *side = eq_round_shift64(*side, r, stochastic ? &draw : NULL);
        }
        acc[i] = (int32_t)(x + y);
    }
    if (r > 0 && stochastic) {
        draws->counter += (uint32_t)n;
    }
    *e_out = e;
    return EQ_OK;
}
