/* QGemm, int8: y[n,c] = clamp(y_zp + MBQM(bias[c] + sum_k (x[n,k] - x_zp) w[c,k])).
 * int32 accumulator: the compiler proved in_features * 255 * 127 + |bias| < 2^31. */
#include "eq_internal.h"

/* Bytes for the fast path: the row x - x_zp as int16 (+4 alignment slack), computed once
 * per batch row and shared by every output feature. NULL scratch: the direct loop. */
size_t eq_fully_connected_s8_scratch_size(const eq_fc_params *p)
{
    return p == NULL || p->in_features < 1 ? 0 : (size_t)p->in_features * 2u + 4u;
}

eq_status eq_fully_connected_s8(const eq_fc_params *p, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                void *scratch, int8_t *y)
{
    int32_t n, c, k;
    if (p == NULL || x == NULL || w == NULL || mult == NULL || shift == NULL || y == NULL ||
        p->batch < 1 || p->in_features < 1 || p->out_features < 1 ||
        !eq_zp_ok(p->x_zp) || !eq_zp_ok(p->y_zp) || !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    for (c = 0; c < p->out_features; ++c) {
        if (!eq_shift_ok(shift[c])) {
            return EQ_ERR_ARG;
        }
    }
    if (scratch != NULL) {
        int16_t *row = eq_align4_s16(scratch);
        for (n = 0; n < p->batch; ++n) {
            const int8_t *x_n = x + (size_t)n * p->in_features;
            for (k = 0; k < p->in_features; ++k) {
                row[eq_dot_slot(k, p->in_features)] = (int16_t)((int32_t)x_n[k] - p->x_zp);
            }
            for (c = 0; c < p->out_features; c += 2) {
                /* two output features per pass share the row loads */
                const int32_t pair = c + 1 < p->out_features;
                int32_t acc[2], j;
                acc[0] = bias != NULL ? bias[c] : 0;
                acc[1] = bias != NULL && pair ? bias[c + 1] : 0;
                if (pair) {
                    eq_dot2_s16_s8(row, w + (size_t)c * p->in_features,
                                   w + (size_t)(c + 1) * p->in_features, p->in_features,
                                   &acc[0], &acc[1]);
                } else {
                    acc[0] = eq_dot_s16_s8(row, w + (size_t)c * p->in_features, p->in_features, acc[0]);
                }
                for (j = 0; j <= pair; ++j) {
                    const int32_t v = multiply_by_quantized_multiplier(acc[j], mult[c + j], shift[c + j]);
                    y[(size_t)n * p->out_features + c + j] = eq_out_s8(v, p->y_zp, p->act_min, p->act_max);
                }
            }
        }
        return EQ_OK;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_features;
        for (c = 0; c < p->out_features; ++c) {
            const int8_t *w_c = w + (size_t)c * p->in_features;
            int32_t acc = bias != NULL ? bias[c] : 0;
            for (k = 0; k < p->in_features; ++k) {
                acc += ((int32_t)x_n[k] - p->x_zp) * (int32_t)w_c[k];
            }
            acc = multiply_by_quantized_multiplier(acc, mult[c], shift[c]);
            y[(size_t)n * p->out_features + c] = eq_out_s8(acc, p->y_zp, p->act_min, p->act_max);
        }
    }
    return EQ_OK;
}
