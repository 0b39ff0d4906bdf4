/* QMaxPool, int8, NHWC, Cortex-M55 Helium: 16 channels per vector, VMAX.S8 over the
 * window's inside taps, the act clamp, a (predicated) 16-byte store. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_maxpool_s8_mve_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_maxpool_s8_mve(const eq_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch, C;
    int8x16_t lo, hi;
    eq_status st;
    if (p == NULL || x == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_nhwc_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    C = p->channels;
    lo = vdupq_n_s8((int8_t)p->act_min);
    hi = vdupq_n_s8((int8_t)p->act_max);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int32_t row_step = p->dilation_h * p->in_w * C, col_step = p->dilation_w * C;
                const int8_t *first;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                first = x_n + ((size_t)(ih0 + r0 * p->dilation_h) * p->in_w + iw0 + c0 * p->dilation_w) * C;
                for (ch = 0; ch < C; ch += 16) {
                    const mve_pred16_t pr = vctp8q((uint32_t)(C - ch));
                    const int8_t *rp = first + ch;
                    int8x16_t m = vdupq_n_s8(-128);  /* every tap is >= -128 */
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            m = vmaxq_s8(m, vldrbq_z_s8(tp, pr));
                        }
                    }
                    vstrbq_p_s8(y + ch, vminq_s8(vmaxq_s8(m, lo), hi), pr);
                }
            }
        }
    }
    return EQ_OK;
}

#endif
