/* QNarrow16, TFLite QUANTIZE int16 -> int8: y = clamp(y_zp + MBQM(x, mult, shift), -128, 127),
 * the int8 copy of a recurrent state. |x| <= 2^15: shift <= 15 keeps the left shift inside int32. */
#include "eq_internal.h"

size_t eq_narrow_s16_s8_scratch_size(const eq_narrow_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_narrow_s16_s8(const eq_narrow_params *p, const int16_t *x, int8_t *y)
{
    int32_t i;
    if (p == NULL || x == NULL || y == NULL || p->size < 0 || !eq_zp_ok(p->y_zp) ||
        p->shift < -31 || p->shift > 15) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        y[i] = eq_out_s8(multiply_by_quantized_multiplier(x[i], p->mult, p->shift), p->y_zp, -128, 127);
    }
    return EQ_OK;
}
