/* QPrelu, int8, per channel along axis 1. |d| = |x - x_zp| <= 255 < 2^8, so shifts up to
 * 23 keep MBQM's left shift inside int32. In-place (y == x) is fine. */
#include "eq_internal.h"

size_t eq_prelu_s8_scratch_size(const eq_prelu_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_prelu_s8(const eq_prelu_params *p, const int8_t *x, const int32_t *neg_mult,
                      const int32_t *neg_shift, const int32_t *neg_sign, int8_t *y)
{
    int32_t n, c, i;
    if (p == NULL || x == NULL || neg_mult == NULL || neg_shift == NULL || neg_sign == NULL ||
        y == NULL || p->batch < 1 || p->channels < 1 || p->inner < 1 ||
        (p->neg_channels != 1 && p->neg_channels != p->channels) || !eq_zp_ok(p->x_zp) ||
        !eq_zp_ok(p->y_zp) || p->pos_shift < -31 || p->pos_shift > 23 ||
        !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    for (c = 0; c < p->neg_channels; ++c) {
        if (neg_shift[c] < -31 || neg_shift[c] > 23 || neg_sign[c] < -1 || neg_sign[c] > 1) {
            return EQ_ERR_ARG;
        }
    }
    for (n = 0; n < p->batch; ++n) {
        for (c = 0; c < p->channels; ++c) {
            const int32_t k = p->neg_channels == 1 ? 0 : c;
            for (i = 0; i < p->inner; ++i) {
                const int32_t d = (int32_t)*x++ - p->x_zp;
                const int32_t v = d >= 0
                    ? multiply_by_quantized_multiplier(d, p->pos_mult, p->pos_shift)
                    : neg_sign[k] * multiply_by_quantized_multiplier(d, neg_mult[k], neg_shift[k]);
                *y++ = eq_out_s8(v, p->y_zp, p->act_min, p->act_max);
            }
        }
    }
    return EQ_OK;
}
