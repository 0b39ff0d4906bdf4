/* QAvgPool, int8, NCHW: round_half_away(sum / n) over the taps inside the input, the
 * division done by the exact reciprocal recip[n] >> rshift[n] (no divide instruction).
 * n counts inside taps only, or kernel_h * kernel_w with count_include_pad (the padding
 * taps then add x_zp each). |sum| <= 128 * kernel_h * kernel_w < 2^31. */
#include "eq_pool_common.h"

size_t eq_avgpool_s8_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_avgpool_s8(const eq_pool_params *p, const int8_t *x, const int32_t *recip,
                        const int32_t *rshift, int8_t *y)
{
    int32_t plane, oh, ow, r0, r1, c0, c1, r, c, i;
    eq_status st;
    if (p == NULL || x == NULL || recip == NULL || rshift == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    if (p->kernel_h > 256 || p->kernel_w > 256) {
        return EQ_ERR_ARG;  /* keeps 128 * kH * kW far inside int32 */
    }
    for (i = 1; i <= p->kernel_h * p->kernel_w; ++i) {
        if (recip[i] <= 0 || rshift[i] < 0 || rshift[i] > 62) {
            return EQ_ERR_ARG;
        }
    }
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
                int32_t sum = 0, n;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                for (r = r0; r < r1; ++r) {
                    const int8_t *row = x_p + (ih0 + r * p->dilation_h) * p->in_w;
                    for (c = c0; c < c1; ++c) {
                        sum += row[iw0 + c * p->dilation_w];
                    }
                }
                n = (r1 - r0) * (c1 - c0);
                if (p->count_include_pad) {
                    sum += (p->kernel_h * p->kernel_w - n) * p->x_zp;
                    n = p->kernel_h * p->kernel_w;
                }
                *y++ = (int8_t)clamp(round_half_away_div(sum, n, recip[n], rshift[n]),
                                     p->act_min, p->act_max);
            }
        }
    }
    return EQ_OK;
}
