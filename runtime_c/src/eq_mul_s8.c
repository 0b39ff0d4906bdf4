/* QMul, int8, TFLite MUL with 4-D broadcasting: y = clamp(y_zp + MBQM((a - a_zp)(b - b_zp))).
 * |(a - a_zp)(b - b_zp)| <= 255 * 255 < 2^16: y_shift <= 15 keeps MBQM's left shift in int32. */
#include "eq_broadcast.h"

size_t eq_mul_s8_scratch_size(const eq_mul_params *p)
{
    (void)p;
    return 0;
}

static int8_t mul_one(const eq_mul_params *p, int32_t a, int32_t b)
{
    const int32_t prod = (a - p->a_zp) * (b - p->b_zp);
    return eq_out_s8(multiply_by_quantized_multiplier(prod, p->y_mult, p->y_shift),
                     p->y_zp, p->act_min, p->act_max);
}

eq_status eq_mul_s8(const eq_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    int32_t sa[EQ_BCAST_RANK], sb[EQ_BCAST_RANK];
    int32_t i0, i1, i2, i3;
    if (p == NULL || a == NULL || b == NULL || y == NULL || !eq_zp_ok(p->a_zp) ||
        !eq_zp_ok(p->b_zp) || !eq_zp_ok(p->y_zp) || !eq_shift_ok(p->y_shift) ||
        !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    if (!eq_bcast_strides(p->a_dims, p->y_dims, sa) || !eq_bcast_strides(p->b_dims, p->y_dims, sb)) {
        return EQ_ERR_SHAPE;
    }
    if (eq_same_dims(p->a_dims, p->y_dims) && eq_same_dims(p->b_dims, p->y_dims)) {
        const int32_t size = p->y_dims[0] * p->y_dims[1] * p->y_dims[2] * p->y_dims[3];
        for (i0 = 0; i0 < size; ++i0) {  /* common case: no broadcasting */
            y[i0] = mul_one(p, a[i0], b[i0]);
        }
        return EQ_OK;
    }
    for (i0 = 0; i0 < p->y_dims[0]; ++i0) {
        for (i1 = 0; i1 < p->y_dims[1]; ++i1) {
            for (i2 = 0; i2 < p->y_dims[2]; ++i2) {
                const int32_t a_row = i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
                const int32_t b_row = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                for (i3 = 0; i3 < p->y_dims[3]; ++i3) {
                    *y++ = mul_one(p, a[a_row + i3 * sa[3]], b[b_row + i3 * sb[3]]);
                }
            }
        }
    }
    return EQ_OK;
}
