/* QConcat, int8: a copy. Output row r is input 0's r-th chunk, then input 1's, ... */
#include "eq_internal.h"

size_t eq_concat_s8_scratch_size(int32_t n_inputs)
{
    (void)n_inputs;
    return 0;
}

eq_status eq_concat_s8(int32_t n_inputs, const int8_t *const *inputs, const int32_t *chunk,
                       int32_t outer, int8_t *y)
{
    int32_t r, k, i;
    if (inputs == NULL || chunk == NULL || y == NULL || n_inputs < 1 || outer < 1) {
        return EQ_ERR_ARG;
    }
    for (k = 0; k < n_inputs; ++k) {
        if (inputs[k] == NULL || chunk[k] < 0) {
            return EQ_ERR_ARG;
        }
    }
    for (r = 0; r < outer; ++r) {
        for (k = 0; k < n_inputs; ++k) {
            const int8_t *src = inputs[k] + (size_t)r * chunk[k];
            for (i = 0; i < chunk[k]; ++i) {
                *y++ = src[i];
            }
        }
    }
    return EQ_OK;
}
