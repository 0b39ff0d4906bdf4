/* QAvgPool, int8, NHWC, portable C99: round_half_away(sum / n) over the window's inside
 * taps (n = kH * kW with count_include_pad, the padding adding x_zp per tap), divided by
 * the exact reciprocal recip[n] >> rshift[n] (eq_avgpool_s8's semantics).
 * |sum| <= 128 * 255 * 255 < 2^31 (kH, kW <= 255, checked). */
#include "eq_nhwc_check.h"

size_t eq_nhwc_avgpool_s8_c_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_avgpool_s8_c(const eq_pool_params *p, const int8_t *x, const int32_t *recip,
                               const int32_t *rshift, void *scratch, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch, i;
    eq_status st;
    (void)scratch;
    if (p == NULL || x == NULL || recip == NULL || rshift == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_nhwc_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    for (i = 1; i <= p->kernel_h * p->kernel_w; ++i) {
        if (recip[i] <= 0 || rshift[i] < 0 || rshift[i] > 62) {
            return EQ_ERR_ARG;
        }
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                int32_t count;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                count = (r1 - r0) * (c1 - c0);
                for (ch = 0; ch < p->channels; ++ch) {
                    int32_t sum = 0, k = count;
                    for (r = r0; r < r1; ++r) {
                        const int8_t *row = x_n + ((size_t)(ih0 + r * p->dilation_h) * p->in_w) * p->channels + ch;
                        for (c = c0; c < c1; ++c) {
                            sum += row[(size_t)(iw0 + c * p->dilation_w) * p->channels];
                        }
                    }
                    if (p->count_include_pad) {
                        sum += (p->kernel_h * p->kernel_w - count) * p->x_zp;
                        k = p->kernel_h * p->kernel_w;
                    }
                    *y++ = (int8_t)clamp(round_half_away_div(sum, k, recip[k], rshift[k]),
                                         p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}
