/* The body of eq_nhwc_dw3x3_s8_mve (depthwise 3x3, multiplier 1, stride 1 or 2, pads <= 1,
 * NHWC, Cortex-M55 Helium), always inline so generated code can specialise it with a pointer
 * to a `static const` eq_conv2d_params (eq_kernels_nhwc.h, "Shape specialisation": the
 * pointer steps between taps become constants). Arguments are unchecked here.
 *
 * Per output pixel and 8 channels (packing "mve": per 8 channels, 9 x 8 weights; bias and
 * eq_rq4 in packing.DW_MVE_LANES order): per tap VLDRB.S16 of x and w, VMULLB/VMULLT into
 * the even/odd int32 sums (eq_mve_dw_tap), then requantize, narrow to 8 bytes, store.
 * Interior pixels walk the taps with one pointer (+C, +C, then the next row); border pixels
 * take a tap list in which outside taps read zp_row (x_zp bytes, in_c rounded up to 8 + 8:
 * bias_eff is folded). The last block of in_c % 8 channels is predicated. */
#ifndef EQ_NHWC_DW3X3_MVE_BODY_H
#define EQ_NHWC_DW3X3_MVE_BODY_H

#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* One tap inside the 3x3 assembly below: x at [p], w at [w + off], then p += step. */
#define EQ_DW3_TAP(off, step)                                    \
    "vldrb.s16   %q[x], [%[p]]\n\t"                              \
    "vldrb.s16   %q[w], [%[wa], #" #off "]\n\t"                   \
    "vmullb.s16  %q[t], %q[x], %q[w]\n\t"                        \
    "vadd.i32    %q[e], %q[e], %q[t]\n\t"                        \
    "vmullt.s16  %q[t], %q[x], %q[w]\n\t"                        \
    "vadd.i32    %q[o], %q[o], %q[t]\n\t"                        \
    "add         %[p], %[p], %[" #step "]\n\t"

/* The 9 taps of an interior pixel for 8 channels from x at p (the window's top-left pixel,
 * channel c): one pointer walks the window (+C, +C, then row - 2C to the next row). One
 * assembly statement, 7 instructions per tap: GCC otherwise precomputes the nine addresses
 * and spills them. */
EQ_INLINE void eq_mve_dw3x3_interior(eq_mve_acc8 *s, const int8_t *p, const int8_t *w8, int32_t C,
                                     int32_t row_back)
{
    int16x8_t x, w;
    int32x4_t t;
    __asm__(EQ_DW3_TAP(0, c) EQ_DW3_TAP(8, c) EQ_DW3_TAP(16, r)
            EQ_DW3_TAP(24, c) EQ_DW3_TAP(32, c) EQ_DW3_TAP(40, r)
            EQ_DW3_TAP(48, c) EQ_DW3_TAP(56, c)
            "vldrb.s16   %q[x], [%[p]]\n\t"
            "vldrb.s16   %q[w], [%[wa], #64]\n\t"
            "vmullb.s16  %q[t], %q[x], %q[w]\n\t"
            "vadd.i32    %q[e], %q[e], %q[t]\n\t"
            "vmullt.s16  %q[t], %q[x], %q[w]\n\t"
            "vadd.i32    %q[o], %q[o], %q[t]\n\t"
            : [e] "+w"(s->even), [o] "+w"(s->odd), [x] "=&w"(x), [w] "=&w"(w), [t] "=&w"(t), [p] "+l"(p)
            : [wa] "l"(w8), [c] "r"(C), [r] "r"(row_back)  /* widening loads take r0-r7 */
            : "memory");
}

/* One 8-channel block's sums over `taps` taps at tap[t] + c (the general path). */
EQ_INLINE eq_mve_acc8 eq_mve_dw_block(const int8_t *const *tap, int32_t taps, int32_t c, const int8_t *w8,
                                      const int32_t *bias8, mve_pred16_t pred)
{
    eq_mve_acc8 s;
    int32_t t;
    s.even = vldrwq_s32(bias8);
    s.odd = vldrwq_s32(bias8 + 4);
    for (t = 0; t < taps; ++t, w8 += 8) {
        eq_mve_dw_tap(&s, vldrbq_z_s16(tap[t] + c, pred), vldrbq_s16(w8));
    }
    return s;
}

EQ_INLINE void eq_nhwc_dw3x3_mve_body(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                      const int32_t *bias, const eq_rq4 *rq, int left, const int8_t *zp_row,
                                      int8_t *y)
{
    const int32_t C = p->in_c, in_w = p->in_w, in_h = p->in_h, row = in_w * C;
    const int narrow = p->act_min > -128 || p->act_max < 127;
    const int16x8_t lo = vdupq_n_s16((int16_t)p->act_min), hi = vdupq_n_s16((int16_t)p->act_max);
    const int32_t C8 = C & ~7;  /* channels in whole blocks */
    int32_t n, oh, ow, c, kh, kw;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * in_h * row;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int8_t *tap[9];
                const int8_t **tp = tap;
                if (ih0 >= 0 && ih0 + 2 < in_h && iw0 >= 0 && iw0 + 2 < in_w) {
                    /* interior: the taps are base, +C, +2C, then the next rows */
                    const int8_t *base = x_n + (size_t)ih0 * row + (size_t)iw0 * C;
                    const int8_t *w8 = w;
                    for (c = 0; c < C8; c += 8, w8 += 72) {
                        eq_mve_acc8 s;
                        s.even = vldrwq_s32(bias + c);
                        s.odd = vldrwq_s32(bias + c + 4);
                        eq_mve_dw3x3_interior(&s, base + c, w8, C, row - 2 * C);
                        eq_mve_dw_store8(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, 0, 1);
                    }
                    if (C8 == C) {
                        continue;
                    }
                }
                for (kh = 0; kh < 3; ++kh) {  /* border (or the last partial block) */
                    for (kw = 0; kw < 3; ++kw) {
                        const int32_t ih = ih0 + kh, iw = iw0 + kw;
                        *tp++ = ih >= 0 && ih < in_h && iw >= 0 && iw < in_w ? x_n + (size_t)ih * row + (size_t)iw * C
                                                                              : zp_row;
                    }
                }
                c = ih0 >= 0 && ih0 + 2 < in_h && iw0 >= 0 && iw0 + 2 < in_w ? C8 : 0;
                for (; c < C8; c += 8) {  /* whole blocks of a border pixel */
                    const int8_t *w8 = w + (size_t)c * 9;
                    eq_mve_acc8 s;
                    s.even = vldrwq_s32(bias + c);
                    s.odd = vldrwq_s32(bias + c + 4);
                    EQ_MVE_DW_TAP_AT(s, tap[0] + c, w8, 0);
                    EQ_MVE_DW_TAP_AT(s, tap[1] + c, w8, 8);
                    EQ_MVE_DW_TAP_AT(s, tap[2] + c, w8, 16);
                    EQ_MVE_DW_TAP_AT(s, tap[3] + c, w8, 24);
                    EQ_MVE_DW_TAP_AT(s, tap[4] + c, w8, 32);
                    EQ_MVE_DW_TAP_AT(s, tap[5] + c, w8, 40);
                    EQ_MVE_DW_TAP_AT(s, tap[6] + c, w8, 48);
                    EQ_MVE_DW_TAP_AT(s, tap[7] + c, w8, 56);
                    EQ_MVE_DW_TAP_AT(s, tap[8] + c, w8, 64);
                    eq_mve_dw_store8(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, 0, 1);
                }
                for (; c < C; c += 8) {  /* the last partial block */
                    const mve_pred16_t pred = vctp16q((uint32_t)(C - c));
                    const eq_mve_acc8 s = eq_mve_dw_block(tap, 9, c, w + (size_t)c * 9, bias + c, pred);
                    eq_mve_dw_store8(&s, rq + (c >> 2), left, p->y_zp, lo, hi, narrow, y + c, pred, C - c >= 8);
                }
            }
        }
    }
}

#endif /* __ARM_FEATURE_MVE */
#endif /* EQ_NHWC_DW3X3_MVE_BODY_H */
