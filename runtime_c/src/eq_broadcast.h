/* 4-D numpy broadcasting for the binary kernels (add, mul): element strides of an input
 * as seen from the output index, 0 along broadcast axes. */
#ifndef EQ_BROADCAST_H
#define EQ_BROADCAST_H

#include "eq_internal.h"

/* 1 if in_dims broadcasts to out_dims (each dim equal or 1); fills strides. */
static inline int eq_bcast_strides(const int32_t *in_dims, const int32_t *out_dims,
                                   int32_t *strides)
{
    int32_t i, s = 1;
    for (i = EQ_BCAST_RANK - 1; i >= 0; --i) {
        if (out_dims[i] < 1 || in_dims[i] < 1 ||
            (in_dims[i] != out_dims[i] && in_dims[i] != 1)) {
            return 0;
        }
        strides[i] = in_dims[i] == 1 ? 0 : s;
        s *= in_dims[i];
    }
    return 1;
}

static inline int eq_same_dims(const int32_t *a, const int32_t *b)
{
    int32_t i;
    for (i = 0; i < EQ_BCAST_RANK; ++i) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

#endif /* EQ_BROADCAST_H */
