/* QGemm with int4 weights packed two per byte (eq_kernels.h, eq_s4.h): the same op and
 * bytes as eq_fully_connected_s8. Row c of w holds output feature c's in_features values
 * in (in_features + 1) >> 1 bytes. int32 accumulator: |w| <= 8 < 127, so the s8 bound
 * the compiler proves (in_features * 255 * qmax + |bias| < 2^31) covers it. */
#include "eq_s4.h"

/* The same int16 row as eq_fully_connected_s8: 2 * in_features + 4 bytes. */
size_t eq_fully_connected_s4_scratch_size(const eq_fc_params *p)
{
    return p == NULL || p->in_features < 1 ? 0 : (size_t)p->in_features * 2u + 4u;
}

eq_status eq_fully_connected_s4(const eq_fc_params *p, const int8_t *x, const uint8_t *w,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                void *scratch, int8_t *y)
{
    int32_t n, c, k, row;
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
    row = eq_s4_row_bytes(p->in_features);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_features;
        int16_t *xs = scratch != NULL ? eq_align4_s16(scratch) : NULL;
        if (xs != NULL) {  /* x - x_zp once per batch row, in s4 dot order */
            for (k = 0; k < p->in_features; ++k) {
                xs[eq_dot_slot_s4(k, p->in_features)] = (int16_t)((int32_t)x_n[k] - p->x_zp);
            }
        }
        for (c = 0; c < p->out_features; c += 2) {
            /* two output features per pass (the dot product shares the row loads) */
            const int32_t pair = c + 1 < p->out_features;
            const uint8_t *w_c = w + (size_t)c * row;
            int32_t acc[2], j;
            acc[0] = bias != NULL ? bias[c] : 0;
            acc[1] = bias != NULL && pair ? bias[c + 1] : 0;
            if (xs != NULL && pair) {
                eq_dot2_s16_s4(xs, w_c, w_c + row, p->in_features, &acc[0], &acc[1]);
            } else if (xs != NULL) {
                acc[0] = eq_dot_s16_s4(xs, w_c, p->in_features, acc[0]);
            } else {
                for (k = 0; k < p->in_features; ++k) {
                    const int32_t d = (int32_t)x_n[k] - p->x_zp;
                    acc[0] += d * eq_s4_get(w_c, k);
                    acc[1] += pair ? d * eq_s4_get(w_c + row, k) : 0;
                }
            }
            for (j = 0; j <= pair; ++j) {
                const int32_t v = multiply_by_quantized_multiplier(acc[j], mult[c + j], shift[c + j]);
                y[(size_t)n * p->out_features + c + j] = eq_out_s8(v, p->y_zp, p->act_min, p->act_max);
            }
        }
    }
    return EQ_OK;
}
