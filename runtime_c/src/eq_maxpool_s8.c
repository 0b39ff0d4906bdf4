/* QMaxPool, int8, NCHW: max over the taps inside the input, then the act clamp. */
#include "eq_pool_common.h"

size_t eq_maxpool_s8_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_maxpool_s8(const eq_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t plane, oh, ow, r0, r1, c0, c1, r, c;
    eq_status st;
    if (p == NULL || x == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    /* An empty window is a compile error; check all windows before writing anything. */
    for (oh = 0; oh < p->out_h; ++oh) {
        eq_tap_range(oh * p->stride_h - p->pad_top, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
        if (r0 == r1) {
            return EQ_ERR_SHAPE;
        }
    }
    for (ow = 0; ow < p->out_w; ++ow) {
        eq_tap_range(ow * p->stride_w - p->pad_left, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
        if (c0 == c1) {
            return EQ_ERR_SHAPE;
        }
    }
    for (plane = 0; plane < p->batch * p->channels; ++plane) {
        const int8_t *x_p = x + (size_t)plane * p->in_h * p->in_w;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                int32_t best = -129;  /* below every int8: the first inside tap wins */
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                for (r = r0; r < r1; ++r) {
                    const int8_t *row = x_p + (ih0 + r * p->dilation_h) * p->in_w;
                    for (c = c0; c < c1; ++c) {
                        const int32_t v = row[iw0 + c * p->dilation_w];
                        best = v > best ? v : best;
                    }
                }
                *y++ = (int8_t)clamp(best, p->act_min, p->act_max);
            }
        }
    }
    return EQ_OK;
}
