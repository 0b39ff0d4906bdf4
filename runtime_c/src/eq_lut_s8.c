/* QLut, int8: y = table[x + 128]; x + 128 is in [0, 255], so the index is always valid. */
#include "eq_internal.h"

size_t eq_lut_s8_scratch_size(int32_t size)
{
    (void)size;
    return 0;
}

eq_status eq_lut_s8(int32_t size, const int8_t *x, const int8_t *table, int8_t *y)
{
    int32_t i;
    if (x == NULL || table == NULL || y == NULL || size < 0) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < size; ++i) {
        y[i] = table[(int32_t)x[i] + 128];
    }
    return EQ_OK;
}
