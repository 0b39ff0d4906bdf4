/* QAvgPool, int8, NHWC, Cortex-M DSP: four channels per word; per tap SXTAB16 adds the
 * sign-extended bytes into two registers of int16 lane pairs ((c0, c2), (c1, c3)), which
 * hold |sum| <= 128 * 255 < 2^15 and are widened every 255 taps; then the exact
 * reciprocal division (eq_avgpool_s8's semantics) per channel. Channels past the last
 * multiple of 4 run one by one. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_avgpool_s8_dsp_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

static inline int8_t average(int32_t sum, int32_t count, const eq_pool_params *p, const int32_t *recip,
                             const int32_t *rshift)
{
    if (p->count_include_pad) {
        sum += (p->kernel_h * p->kernel_w - count) * p->x_zp;
        count = p->kernel_h * p->kernel_w;
    }
    return (int8_t)clamp(round_half_away_div(sum, count, recip[count], rshift[count]), p->act_min, p->act_max);
}

eq_status eq_nhwc_avgpool_s8_dsp(const eq_pool_params *p, const int8_t *x, const int32_t *recip,
                                 const int32_t *rshift, void *scratch, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch, C, C4, i;
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
    C = p->channels;
    C4 = C & ~3;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int32_t row_step = p->dilation_h * p->in_w * C, col_step = p->dilation_w * C;
                const int8_t *first;
                int32_t count;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                count = (r1 - r0) * (c1 - c0);
                first = x_n + ((size_t)(ih0 + r0 * p->dilation_h) * p->in_w + iw0 + c0 * p->dilation_w) * C;
                for (ch = 0; ch < C4; ch += 4) {
                    const int8_t *rp = first + ch;
                    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, taps = 0;
                    uint32_t e = 0, o = 0;  /* int16 lanes: (c0, c2), (c1, c3) */
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            const uint32_t xw = eq_ld32(tp);
                            e = (uint32_t)__sxtab16((int16x2_t)e, (int8x4_t)xw);
                            o = (uint32_t)__sxtab16((int16x2_t)o, (int8x4_t)eq_ror8(xw));
                            if (++taps == 255) {  /* widen before the int16 lanes could overflow */
                                s0 += (int16_t)e;
                                s2 += (int16_t)(e >> 16);
                                s1 += (int16_t)o;
                                s3 += (int16_t)(o >> 16);
                                e = o = 0;
                                taps = 0;
                            }
                        }
                    }
                    s0 += (int16_t)e;
                    s2 += (int16_t)(e >> 16);
                    s1 += (int16_t)o;
                    s3 += (int16_t)(o >> 16);
                    y[ch] = average(s0, count, p, recip, rshift);
                    y[ch + 1] = average(s1, count, p, recip, rshift);
                    y[ch + 2] = average(s2, count, p, recip, rshift);
                    y[ch + 3] = average(s3, count, p, recip, rshift);
                }
                for (ch = C4; ch < C; ++ch) {
                    const int8_t *rp = first + ch;
                    int32_t sum = 0;
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            sum += *tp;
                        }
                    }
                    y[ch] = average(sum, count, p, recip, rshift);
                }
            }
        }
    }
    return EQ_OK;
}

#endif
