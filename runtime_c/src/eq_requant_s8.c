/* QRequant, int8 -> int8: y = clamp(y_zp + MBQM(x - x_zp, mult, shift), -128, 127).
 * |x - x_zp| <= 255 < 2^8: shift <= 23 keeps the left shift inside int32. In-place is fine. */
#include "eq_internal.h"

size_t eq_requant_s8_scratch_size(const eq_requant_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_requant_s8(const eq_requant_params *p, const int8_t *x, int8_t *y)
{
    int32_t i;
    if (p == NULL || x == NULL || y == NULL || p->size < 0 || !eq_zp_ok(p->x_zp) ||
        !eq_zp_ok(p->y_zp) || p->shift < -31 || p->shift > 23) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        y[i] = eq_out_s8(multiply_by_quantized_multiplier((int32_t)x[i] - p->x_zp, p->mult, p->shift),
                         p->y_zp, -128, 127);
    }
    return EQ_OK;
}
