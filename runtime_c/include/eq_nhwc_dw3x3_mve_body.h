/* The body of eq_nhwc_dw3x3_s8_mve (depthwise 3x3, multiplier 1, stride 1 or 2, pads <= 1,
 * NHWC, Cortex-M55 Helium), always inline so generated code can specialise it with a pointer
 * to a `static const` eq_conv2d_params (eq_kernels_nhwc.h, "Shape specialisation").
 * Arguments are unchecked here.
 *
 * Per output pixel the 9 taps' pixels are found once (zp_row, x_zp bytes, for taps outside
 * the input: bias_eff is folded); then per 16 channels: the 9 x vectors and the block's 9
 * weight vectors (packing "mve": per 16 channels, 9 x 16 bytes), multiplied pairwise into
 * int16 (VMULLB/VMULLT) and widened into four int32 sums (eq_mve_dw_pair), requantized,
 * narrowed back to 16 bytes and stored. The last block is predicated (in_c % 16). */
#ifndef EQ_NHWC_DW3X3_MVE_BODY_H
#define EQ_NHWC_DW3X3_MVE_BODY_H

#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* Sums of one 16-channel block over `taps` taps: tap[t] + c for x, w16 + 16 t for w. */
EQ_INLINE eq_mve_acc16 eq_mve_dw_block(const int8_t *const *tap, int32_t taps, int32_t c, const int8_t *w16,
                                       const int32_t *bias16, mve_pred16_t pred)
{
    eq_mve_acc16 s = eq_mve_acc16_load(bias16);
    int32_t t;
    for (t = 0; t + 1 < taps; t += 2) {
        eq_mve_dw_pair(&s, vldrbq_z_s8(tap[t] + c, pred), vldrbq_s8(w16 + 16 * t),
                       vldrbq_z_s8(tap[t + 1] + c, pred), vldrbq_s8(w16 + 16 * t + 16));
    }
    if (t < taps) {
        eq_mve_dw_one(&s, vldrbq_z_s8(tap[t] + c, pred), vldrbq_s8(w16 + 16 * t));
    }
    return s;
}

EQ_INLINE void eq_nhwc_dw3x3_mve_body(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                      const int32_t *bias, const eq_rq4 *rq, int left, const int8_t *zp_row,
                                      int8_t *y)
{
    const int32_t C = p->in_c, in_w = p->in_w, in_h = p->in_h;
    const int narrow = p->act_min > -128 || p->act_max < 127;
    const int8x16_t lo = vdupq_n_s8((int8_t)p->act_min), hi = vdupq_n_s8((int8_t)p->act_max);
    int32_t n, oh, ow, c, kh, kw;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * in_h * in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int8_t *tap[9];
                const int8_t **tp = tap;
                for (kh = 0; kh < 3; ++kh) {
                    for (kw = 0; kw < 3; ++kw) {
                        const int32_t ih = ih0 + kh, iw = iw0 + kw;
                        *tp++ = ih >= 0 && ih < in_h && iw >= 0 && iw < in_w ? x_n + ((size_t)ih * in_w + iw) * C
                                                                              : zp_row;
                    }
                }
                for (c = 0; c < C; c += 16) {
                    const mve_pred16_t pred = vctp8q((uint32_t)(C - c));
                    const eq_mve_acc16 s = eq_mve_dw_block(tap, 9, c, w + (size_t)c * 9, bias + c, pred);
                    eq_mve_dw_store16(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, pred, C - c >= 16);
                }
            }
        }
    }
}

#endif /* __ARM_FEATURE_MVE */
#endif /* EQ_NHWC_DW3X3_MVE_BODY_H */
