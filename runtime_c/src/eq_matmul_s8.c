/* QMatMul, int8, TFLite BATCH_MATMUL: per batch, y[m][n] = clamp(y_zp + MBQM(sum_k
 * (a[m][k] - a_zp)(b[k][n] - b_zp))). The caller proves K * 255^2, shifted left by
 * max(y_shift, 0), fits int32. */
#include "eq_internal.h"

size_t eq_matmul_s8_scratch_size(const eq_matmul_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_matmul_s8(const eq_matmul_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    int32_t t, i, j, k;
    if (p == NULL || a == NULL || b == NULL || y == NULL || p->batch < 1 || p->m < 1 || p->k < 1 ||
        p->n < 1 || p->a_batch_stride < 0 || p->b_batch_stride < 0 || !eq_zp_ok(p->a_zp) ||
        !eq_zp_ok(p->b_zp) || !eq_zp_ok(p->y_zp) || !eq_shift_ok(p->y_shift) ||
        !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    for (t = 0; t < p->batch; ++t) {
        const int8_t *at = a + (size_t)t * (size_t)p->a_batch_stride;
        const int8_t *bt = b + (size_t)t * (size_t)p->b_batch_stride;
        for (i = 0; i < p->m; ++i) {
            const int8_t *row = at + (size_t)i * (size_t)p->k;
            for (j = 0; j < p->n; ++j) {
                int32_t acc = 0;
                for (k = 0; k < p->k; ++k) {
                    acc += (row[k] - p->a_zp) * (bt[(size_t)k * (size_t)p->n + (size_t)j] - p->b_zp);
                }
                *y++ = eq_out_s8(multiply_by_quantized_multiplier(acc, p->y_mult, p->y_shift),
                                 p->y_zp, p->act_min, p->act_max);
            }
        }
    }
    return EQ_OK;
}
