/* QPad, int8: constant padding. Walks the output in order; an element is copied from the
 * input when every coordinate is inside [pad_begin, pad_begin + in_dim), else `value`. */
#include "eq_internal.h"

size_t eq_pad_s8_scratch_size(const eq_pad_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_pad_s8(const eq_pad_params *p, const int8_t *x, int8_t *y)
{
    int32_t out_dims[EQ_MAX_RANK], idx[EQ_MAX_RANK];
    int32_t i, j, total = 1, outside = 0;
    if (p == NULL || x == NULL || y == NULL || p->rank < 1 || p->rank > EQ_MAX_RANK ||
        p->value < -128 || p->value > 127) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->rank; ++i) {
        if (p->in_dims[i] < 1 || p->pad_begin[i] < 0 || p->pad_end[i] < 0) {
            return EQ_ERR_ARG;
        }
        out_dims[i] = p->pad_begin[i] + p->in_dims[i] + p->pad_end[i];
        total *= out_dims[i];
        idx[i] = 0;
        outside += p->pad_begin[i] > 0;  /* number of axes whose index is in the padding */
    }
    for (j = 0; j < total; ++j) {
        if (outside == 0) {
            *y++ = *x++;  /* inside elements come in input order */
        } else {
            *y++ = (int8_t)p->value;
        }
        for (i = p->rank - 1; i >= 0; --i) {  /* odometer; keep `outside` up to date */
            const int32_t lo = p->pad_begin[i], hi = p->pad_begin[i] + p->in_dims[i];
            const int32_t was_out = idx[i] < lo || idx[i] >= hi;
            int32_t now_out;
            if (++idx[i] == out_dims[i]) {
                idx[i] = 0;
            }
            now_out = idx[i] < lo || idx[i] >= hi;
            outside += now_out - was_out;
            if (idx[i] != 0) {
                break;
            }
        }
    }
    return EQ_OK;
}
