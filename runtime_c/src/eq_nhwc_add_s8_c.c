/* QAdd of two same-shape tensors, int8, portable C99: the inputs' rescalings are the
 * compile-time tables of packing.pack_add, so one requantization per element remains.
 * |table| < 2^28, so table_a[a] + table_b[b] cannot overflow. In-place is fine. */
#include "eq_nhwc_check.h"

size_t eq_nhwc_add_s8_c_scratch_size(const eq_nhwc_add_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_add_s8_c(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b,
                           const int32_t *table_a, const int32_t *table_b, const eq_rq *rq, int8_t *y)
{
    int32_t i;
    eq_status st = eq_nhwc_add_check(p, a, b, table_a, table_b, rq, y);
    if (st != EQ_OK) {
        return st;
    }
    for (i = 0; i < p->size; ++i) {
        const int32_t s = table_a[a[i] + 128] + table_b[b[i] + 128];
        y[i] = eq_rq_out(eq_rq_c(s, rq), p->y_zp, p->act_min, p->act_max);
    }
    return EQ_OK;
}
