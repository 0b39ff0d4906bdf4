/* QMaxPool, int8, NHWC, portable C99: max over the window's taps inside the input, then
 * the act clamp (eq_maxpool_s8's semantics). */
#include "eq_nhwc_check.h"

size_t eq_nhwc_maxpool_s8_c_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_maxpool_s8_c(const eq_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch;
    eq_status st;
    if (p == NULL || x == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_nhwc_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                for (ch = 0; ch < p->channels; ++ch) {
                    int32_t best = -128;  /* a window holds >= 1 inside tap, all >= -128 */
                    for (r = r0; r < r1; ++r) {
                        const int8_t *row = x_n + ((size_t)(ih0 + r * p->dilation_h) * p->in_w) * p->channels + ch;
                        for (c = c0; c < c1; ++c) {
                            const int32_t v = row[(size_t)(iw0 + c * p->dilation_w) * p->channels];
                            best = v > best ? v : best;
                        }
                    }
                    *y++ = (int8_t)clamp(best, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}
