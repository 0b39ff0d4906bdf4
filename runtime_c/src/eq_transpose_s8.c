/* QTranspose, int8: walks the output in order with an odometer over its index, keeping
 * the matching input offset incrementally (no division to recover coordinates). */
#include "eq_internal.h"

size_t eq_transpose_s8_scratch_size(const eq_transpose_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_transpose_s8(const eq_transpose_params *p, const int8_t *x, int8_t *y)
{
    int32_t in_stride[EQ_MAX_RANK], out_dims[EQ_MAX_RANK], step[EQ_MAX_RANK];
    int32_t idx[EQ_MAX_RANK];
    int32_t i, j, total = 1, off = 0, seen = 0;
    if (p == NULL || x == NULL || y == NULL || p->rank < 1 || p->rank > EQ_MAX_RANK) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->rank; ++i) {
        if (p->in_dims[i] < 1 || p->perm[i] < 0 || p->perm[i] >= p->rank ||
            (seen & (1 << p->perm[i]))) {
            return EQ_ERR_ARG;  /* not a permutation */
        }
        seen |= 1 << p->perm[i];
    }
    for (i = p->rank - 1; i >= 0; --i) {
        in_stride[i] = total;
        total *= p->in_dims[i];
    }
    for (i = 0; i < p->rank; ++i) {
        out_dims[i] = p->in_dims[p->perm[i]];
        step[i] = in_stride[p->perm[i]];  /* input offset change per output index step */
        idx[i] = 0;
    }
    for (j = 0; j < total; ++j) {
        y[j] = x[off];
        for (i = p->rank - 1; i >= 0; --i) {  /* increment the odometer */
            off += step[i];
            if (++idx[i] < out_dims[i]) {
                break;
            }
            off -= step[i] * out_dims[i];
            idx[i] = 0;
        }
    }
    return EQ_OK;
}
