/* Shared argument checks and window bounds for maxpool / avgpool. */
#ifndef EQ_POOL_COMMON_H
#define EQ_POOL_COMMON_H

#include "eq_internal.h"

static inline eq_status eq_pool_check(const eq_pool_params *p)
{
    if (p->batch < 1 || p->channels < 1 || !eq_clamp_ok(p->act_min, p->act_max) ||
        !eq_zp_ok(p->x_zp) || (p->count_include_pad != 0 && p->count_include_pad != 1)) {
        return EQ_ERR_ARG;
    }
    if (!eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top,
                          p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left,
                          p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    /* Empty windows (entirely in the padding) are detected per window in the kernels. */
    return EQ_OK;
}

/* Taps [*t0, *t1) of a window starting at `start` (dilation d) that fall inside [0, size). */
static inline void eq_tap_range(int32_t start, int32_t k, int32_t d, int32_t size,
                                int32_t *t0, int32_t *t1)
{
    int32_t a = 0, b = k;
    while (a < b && start + a * d < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * d >= size) {
        --b;
    }
    *t0 = a;
    *t1 = b;
}

#endif /* EQ_POOL_COMMON_H */
