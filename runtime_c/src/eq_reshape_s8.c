/* QReshape: an alias of the input buffer (see eq_kernels.h); this copy exists only for
 * memory plans that keep the two tensors apart. */
#include "eq_internal.h"

size_t eq_reshape_s8_scratch_size(int32_t size)
{
    (void)size;
    return 0;
}

eq_status eq_reshape_s8(int32_t size, const int8_t *x, int8_t *y)
{
    int32_t i;
    if (x == NULL || y == NULL || size < 0) {
        return EQ_ERR_ARG;
    }
    if (x != y) {
        for (i = 0; i < size; ++i) {
            y[i] = x[i];
        }
    }
    return EQ_OK;
}
