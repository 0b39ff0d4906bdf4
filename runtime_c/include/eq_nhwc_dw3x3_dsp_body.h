/* The body of eq_nhwc_dw3x3_s8_dsp (depthwise 3x3, multiplier 1, stride 1 or 2, pads <= 1,
 * NHWC, Cortex-M DSP), always inline so generated code can specialise it with a pointer
 * to a `static const` eq_conv2d_params (eq_kernels_nhwc.h, "Shape specialisation"): the
 * nine tap offsets become immediates. Arguments are unchecked here.
 *
 * Per output pixel and 4 channels: per tap one word of x (4 channels), SXTB16 into
 * (c0, c2) and (c1, c3), one LDRD of the packed int16 weights (packing "dsp": per tap
 * (w0|w2<<16), (w1|w3<<16)), and SMLABB/SMLATT into the four accumulators; then the
 * requantization of the 4 outputs in the same loop and one word store. Border pixels read
 * a row of x_zp (zp_row, in_c rounded up to 4 bytes) for their outside taps (bias_eff is
 * folded); channels past the last multiple of 4 are summed one by one. */
#ifndef EQ_NHWC_DW3X3_DSP_BODY_H
#define EQ_NHWC_DW3X3_DSP_BODY_H

#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

/* Accumulate one tap for 4 channels: x word xw, packed weights w (two words). */
#define EQ_DW_TAP(xw, w)                                                                         \
    do {                                                                                         \
        const uint32_t e_ = (uint32_t)__sxtb16(xw), o_ = eq_sxtb16_ror8(xw);                      \
        a0 = __smlabb((int32_t)e_, (int32_t)(w)[0], a0);                                          \
        a2 = __smlatt((int32_t)e_, (int32_t)(w)[0], a2);                                          \
        a1 = __smlabb((int32_t)o_, (int32_t)(w)[1], a1);                                          \
        a3 = __smlatt((int32_t)o_, (int32_t)(w)[1], a3);                                          \
    } while (0)

/* Requantize 4 channels' accumulators and store them as one word. */
EQ_INLINE void eq_dw_store4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const eq_rq *rq, int32_t zp,
                            int32_t lo, int32_t hi, int narrow, int8_t *y)
{
    const uint32_t v0 = (uint32_t)eq_dsp_out(eq_dsp_rq(a0, &rq[0]), zp, lo, hi, narrow) & 0xFFu;
    const uint32_t v1 = (uint32_t)eq_dsp_out(eq_dsp_rq(a1, &rq[1]), zp, lo, hi, narrow) & 0xFFu;
    const uint32_t v2 = (uint32_t)eq_dsp_out(eq_dsp_rq(a2, &rq[2]), zp, lo, hi, narrow) & 0xFFu;
    const uint32_t v3 = (uint32_t)eq_dsp_out(eq_dsp_rq(a3, &rq[3]), zp, lo, hi, narrow);
    const uint32_t word = v0 | (v1 << 8) | (v2 << 16) | (v3 << 24);
    __builtin_memcpy(y, &word, 4);
}

/* The 9 taps' pixels of the window at (ih0, iw0); the x_zp row for those outside the input. */
EQ_INLINE void eq_dw_taps(const int8_t *tap[9], const int8_t *x_n, int32_t ih0, int32_t iw0, int32_t in_h,
                          int32_t in_w, int32_t C, const int8_t *zp_row)
{
    int32_t kh, kw;
    for (kh = 0; kh < 3; ++kh) {
        for (kw = 0; kw < 3; ++kw) {
            const int32_t ih = ih0 + kh, iw = iw0 + kw;
            *tap++ = ih >= 0 && ih < in_h && iw >= 0 && iw < in_w ? x_n + ((size_t)ih * in_w + iw) * C : zp_row;
        }
    }
}

/* Channels [c0, C) of one pixel, one by one (the tail after the last 4-group). */
EQ_INLINE void eq_dw_tail(const int8_t *const tap[9], int32_t c0, int32_t C, const uint32_t *w, const int32_t *bias,
                          const eq_rq *rq, int32_t zp, int32_t lo, int32_t hi, int8_t *y)
{
    int32_t c, t;
    for (c = c0; c < C; ++c) {
        const uint32_t *wg = w + (size_t)(c >> 2) * 18 + (c & 1);
        const int32_t hi_half = (c & 2) != 0;
        uint32_t acc = (uint32_t)bias[c];
        for (t = 0; t < 9; ++t) {
            const uint32_t word = wg[2 * t];
            acc += (uint32_t)(tap[t][c] * (int32_t)(int16_t)(hi_half ? word >> 16 : word));
        }
        y[c] = (int8_t)eq_dsp_out(eq_dsp_rq((int32_t)acc, &rq[c]), zp, lo, hi, 1);
    }
}

EQ_INLINE void eq_nhwc_dw3x3_dsp_body(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                      const int32_t *bias, const eq_rq *rq, const int8_t *zp_row, int8_t *y)
{
    const int32_t C = p->in_c, C4 = C & ~3, in_w = p->in_w, in_h = p->in_h, out_w = p->out_w, out_h = p->out_h;
    const int32_t sh = p->stride_h, sw = p->stride_w, pt = p->pad_top, pl = p->pad_left;
    const int32_t zp = p->y_zp, lo = p->act_min, hi = p->act_max, narrow = lo > -128 || hi < 127;
    const int32_t row = in_w * C;  /* bytes from one input row to the next */
    const uint32_t *w32 = (const uint32_t *)w;
    int32_t n, oh, ow, c, t;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * in_h * row;
        for (oh = 0; oh < out_h; ++oh) {
            const int32_t ih0 = oh * sh - pt;
            const int rows_in = ih0 >= 0 && ih0 + 2 < in_h;
            for (ow = 0; ow < out_w; ++ow, y += C) {
                const int32_t iw0 = ow * sw - pl;
                const int8_t *tap[9];
                if (rows_in && iw0 >= 0 && iw0 + 2 < in_w) {  /* interior: fixed tap offsets */
                    const int8_t *base = x_n + ((size_t)ih0 * in_w + iw0) * C;
                    const uint32_t *wg = w32;
                    for (c = 0; c < C4; c += 4, wg += 18) {
                        const int8_t *r = base + c;
                        int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
                        EQ_DW_TAP(eq_ld32(r), wg);
                        EQ_DW_TAP(eq_ld32(r + C), wg + 2);
                        EQ_DW_TAP(eq_ld32(r + 2 * C), wg + 4);
                        r += row;
                        EQ_DW_TAP(eq_ld32(r), wg + 6);
                        EQ_DW_TAP(eq_ld32(r + C), wg + 8);
                        EQ_DW_TAP(eq_ld32(r + 2 * C), wg + 10);
                        r += row;
                        EQ_DW_TAP(eq_ld32(r), wg + 12);
                        EQ_DW_TAP(eq_ld32(r + C), wg + 14);
                        EQ_DW_TAP(eq_ld32(r + 2 * C), wg + 16);
                        eq_dw_store4(a0, a1, a2, a3, rq + c, zp, lo, hi, narrow, y + c);
                    }
                    if (C4 < C) {
                        eq_dw_taps(tap, x_n, ih0, iw0, in_h, in_w, C, zp_row);
                        eq_dw_tail(tap, C4, C, w32, bias, rq, zp, lo, hi, y);
                    }
                    continue;
                }
                eq_dw_taps(tap, x_n, ih0, iw0, in_h, in_w, C, zp_row);
                for (c = 0; c < C4; c += 4) {
                    const uint32_t *wg = w32 + (size_t)(c >> 2) * 18;
                    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
                    for (t = 0; t < 9; ++t) {
                        EQ_DW_TAP(eq_ld32(tap[t] + c), wg + 2 * t);
                    }
                    eq_dw_store4(a0, a1, a2, a3, rq + c, zp, lo, hi, narrow, y + c);
                }
                eq_dw_tail(tap, C4, C, w32, bias, rq, zp, lo, hi, y);
            }
        }
    }
}

#endif /* __ARM_FEATURE_DSP */
#endif /* EQ_NHWC_DW3X3_DSP_BODY_H */
