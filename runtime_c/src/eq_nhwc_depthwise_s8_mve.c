/* QConv depthwise (groups == in_c, any kernel, stride, dilation, pads, multiplier), int8,
 * NHWC, Cortex-M55 Helium. Packing "mve" (packing.pack_depthwise): per 8 output channels
 * the taps' 8 weights; bias and eq_rq4 in packing.DW_MVE_LANES order; channels padded to 8.
 * Per output pixel the taps' pixels are found once (the x_zp row for taps outside the
 * input: bias_eff is folded); multiplier 1 then runs 8 channels per vector of int16 lanes,
 * VMULLB/VMULLT into two int32 sums (eq_nhwc_mve.h). A multiplier > 1 (rare) runs per
 * output channel with the reference's MBQM. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dw3x3_mve_body.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* scratch: the x_zp row (in_c rounded up to 8, + 8), then the taps' pointers (kH * kW). */
size_t eq_nhwc_depthwise_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    if (p == NULL || p->in_c < 1 || p->kernel_h < 1 || p->kernel_w < 1) {
        return 0;
    }
    return (size_t)((p->in_c + 7) & ~7) + 8u + (size_t)p->kernel_h * (size_t)p->kernel_w * sizeof(const int8_t *) + 4u;
}

/* Lane of channel j (0..7) in its block: the inverse of packing.DW_MVE_LANES. */
static inline int32_t lane_of(int32_t j)
{
    return ((j & 1) << 2) | (j >> 1);
}

eq_status eq_nhwc_depthwise_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                   const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t mult, n, oh, ow, kh, kw, c, j, t, taps;
    int8_t *zp_row;
    const int8_t **tap;
    int left, narrow;
    int16x8_t lo, hi;
    eq_status st = eq_nhwc_dw_mve_setup(p, x, w, bias, rq, scratch, y, &mult, &zp_row);
    if (st != EQ_OK) {
        return st;
    }
    taps = p->kernel_h * p->kernel_w;
    tap = (const int8_t **)(zp_row + ((p->in_c + 7) & ~7) + 8);
    left = eq_mve_any_left(rq, ((p->out_c + 7) & ~7) >> 2);
    narrow = p->act_min > -128 || p->act_max < 127;
    lo = vdupq_n_s16((int16_t)p->act_min);
    hi = vdupq_n_s16((int16_t)p->act_max);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += p->out_c) {
                t = 0;
                for (kh = 0; kh < p->kernel_h; ++kh) {
                    const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                    for (kw = 0; kw < p->kernel_w; ++kw) {
                        const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                        tap[t++] = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w
                            ? x_n + ((size_t)ih * p->in_w + iw) * p->in_c : zp_row;
                    }
                }
                if (mult == 1) {
                    for (c = 0; c + 8 <= p->in_c; c += 8) {  /* whole blocks */
                        const int8_t *w8 = w + (size_t)c * taps;
                        eq_mve_acc8 s;
                        s.even = vldrwq_s32(bias + c);
                        s.odd = vldrwq_s32(bias + c + 4);
                        for (t = 0; t < taps; ++t) {
                            EQ_MVE_DW_TAP_NEXT(s, tap[t] + c, w8);
                        }
                        eq_mve_dw_store8(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, 0, 1);
                    }
                    for (; c < p->in_c; c += 8) {  /* the last partial block */
                        const mve_pred16_t pred = vctp16q((uint32_t)(p->in_c - c));
                        const eq_mve_acc8 s = eq_mve_dw_block(tap, taps, c, w + (size_t)c * taps, bias + c, pred);
                        eq_mve_dw_store8(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, pred,
                                         p->in_c - c >= 8);
                    }
                    continue;
                }
                for (c = 0; c < p->in_c; ++c) {
                    for (j = 0; j < mult; ++j) {
                        const int32_t co = c * mult + j, blk = co >> 3, lane = lane_of(co & 7);
                        const int8_t *wc = w + (size_t)blk * 8 * taps + (co & 7);
                        const eq_rq4 *q = &rq[blk * 2 + (lane >> 2)];
                        uint32_t acc = (uint32_t)bias[blk * 8 + lane];
                        for (t = 0; t < taps; ++t) {
                            acc += (uint32_t)(tap[t][c] * wc[8 * t]);
                        }
                        y[co] = eq_rq_out(multiply_by_quantized_multiplier(
                                              eq_s32(acc), q->mult[lane & 3], q->neg_r[lane & 3] + q->left[lane & 3]),
                                          p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
    return EQ_OK;
}

#endif
