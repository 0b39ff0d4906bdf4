/* QAvgPool, int8, NHWC, Cortex-M55 Helium: per output pixel and 16 channels, the window's
 * inside taps summed in two vectors of int16 lanes (VLDRB.S16 sign-extends 8 channels per
 * load; |sum| <= 128 * 255 < 2^15 for windows of at most 255 taps, larger windows sum in
 * int32 lanes), stored to scratch, then the exact reciprocal division per channel
 * (eq_avgpool_s8's semantics). |sum| <= 128 * 255 * 255 < 2^31 (kH, kW <= 255). */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_avgpool_s8_mve_scratch_size(const eq_pool_params *p)
{
    return p == NULL || p->channels < 1 ? 0 : (size_t)((p->channels + 15) & ~15) * 4u + 4u;
}

eq_status eq_nhwc_avgpool_s8_mve(const eq_pool_params *p, const int8_t *x, const int32_t *recip,
                                 const int32_t *rshift, void *scratch, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch, C, i, *sums;
    eq_status st;
    if (p == NULL || x == NULL || recip == NULL || rshift == NULL || y == NULL || scratch == NULL) {
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
    sums = (int32_t *)eq_align4_s16(scratch);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int32_t row_step = p->dilation_h * p->in_w * C, col_step = p->dilation_w * C;
                const int8_t *first;
                int32_t count, k;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                count = (r1 - r0) * (c1 - c0);
                first = x_n + ((size_t)(ih0 + r0 * p->dilation_h) * p->in_w + iw0 + c0 * p->dilation_w) * C;
                for (ch = 0; count <= 255 && ch + 16 <= C; ch += 16) {  /* int16 lanes */
                    const int8_t *rp = first + ch;
                    int16x8_t s0 = vdupq_n_s16(0), s1 = s0;
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            s0 = vaddq_s16(s0, vldrbq_s16(tp));
                            s1 = vaddq_s16(s1, vldrbq_s16(tp + 8));
                        }
                    }
                    vstrwq_s32(sums + ch, vmovlbq_s16(s0));        /* channels 0, 2, 4, 6 */
                    vstrwq_s32(sums + ch + 4, vmovltq_s16(s0));    /* 1, 3, 5, 7 */
                    vstrwq_s32(sums + ch + 8, vmovlbq_s16(s1));
                    vstrwq_s32(sums + ch + 12, vmovltq_s16(s1));
                }
                for (; ch < C; ch += 16) {  /* int32 lanes: the tail, or windows above 255 taps */
                    const int8_t *rp = first + ch;
                    const mve_pred16_t p0 = vctp32q((uint32_t)(C - ch)), p1 = vctp32q((uint32_t)(C - ch - 4 > 0 ? C - ch - 4 : 0));
                    const mve_pred16_t p2 = vctp32q((uint32_t)(C - ch - 8 > 0 ? C - ch - 8 : 0));
                    const mve_pred16_t p3 = vctp32q((uint32_t)(C - ch - 12 > 0 ? C - ch - 12 : 0));
                    int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            s0 = vaddq_s32(s0, vldrbq_z_s32(tp, p0));
                            s1 = vaddq_s32(s1, vldrbq_z_s32(tp + 4, p1));
                            s2 = vaddq_s32(s2, vldrbq_z_s32(tp + 8, p2));
                            s3 = vaddq_s32(s3, vldrbq_z_s32(tp + 12, p3));
                        }
                    }
                    vstrwq_s32(sums + ch, s0);
                    vstrwq_s32(sums + ch + 4, s1);
                    vstrwq_s32(sums + ch + 8, s2);
                    vstrwq_s32(sums + ch + 12, s3);
                }
                k = count;
                if (p->count_include_pad) {
                    k = p->kernel_h * p->kernel_w;
                }
                for (ch = 0; ch < C; ++ch) {
                    /* an int16-lane block stored its sums as (0 2 4 6 1 3 5 7) per 8 channels */
                    const int32_t i16 = count <= 255 && (ch | 15) < C ? ((ch & 7) >> 1) + ((ch & 1) << 2) + (ch & ~7) : ch;
                    const int32_t sum = sums[i16] + (k - count) * p->x_zp;
                    y[ch] = (int8_t)clamp(round_half_away_div(sum, k, recip[k], rshift[k]), p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}

#endif
