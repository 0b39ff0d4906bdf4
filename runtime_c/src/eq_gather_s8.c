/* QGather, int8: a copy of x's rows at constant indices along one axis. With the axis in
 * the middle of [outer, in_len, inner], output row (o, k) is input row (o, indices[k]):
 * `inner` contiguous bytes each. */
#include "eq_internal.h"

size_t eq_gather_s8_scratch_size(const eq_gather_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_gather_s8(const eq_gather_params *p, const int32_t *indices, const int8_t *x, int8_t *y)
{
    int32_t o, k, i;
    if (p == NULL || indices == NULL || x == NULL || y == NULL || p->outer < 1 ||
        p->in_len < 1 || p->out_len < 1 || p->inner < 1) {
        return EQ_ERR_ARG;
    }
    for (k = 0; k < p->out_len; ++k) {
        if (indices[k] < 0 || indices[k] >= p->in_len) {
            return EQ_ERR_ARG;
        }
    }
    for (o = 0; o < p->outer; ++o) {
        const int8_t *row = x + (size_t)o * (size_t)p->in_len * (size_t)p->inner;
        for (k = 0; k < p->out_len; ++k) {
            const int8_t *src = row + (size_t)indices[k] * (size_t)p->inner;
            for (i = 0; i < p->inner; ++i) {
                *y++ = src[i];
            }
        }
    }
    return EQ_OK;
}
