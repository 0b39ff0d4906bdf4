/* The body of eq_nhwc_conv_s8_mve (general QConv, NHWC, Cortex-M55 Helium), always inline so
 * generated code can specialise it with a pointer to a `static const` eq_conv2d_params
 * (eq_kernels_nhwc.h, "Shape specialisation": the patch copies and the channel loops get
 * constant bounds, the branches of fill_patch fold). Arguments are unchecked here.
 *
 * Per pair of output pixels and group: both im2col patches (K = kH * kW * in_c/groups int8,
 * ordered (kh, kw, ci); padded taps hold x_zp since bias_eff is folded; zero columns up to
 * K16) are copied 16 bytes at a time (whole chunks when in_c/groups % 16 == 0, predicated
 * otherwise), then every block of 4 output channels takes eight VMLADAVA per 16 columns
 * (eq_mve_dot4x2: each weight vector serves both pixels) and the two pixels' 4 outputs are
 * requantized and stored. Packing "mve" (packing.pack_conv): per group, blocks of 4
 * channels x 16 columns, K16 and each group's channels padded to 4; eq_rq4 blocks.
 * cin_g, cout_g: in_c and out_c per group (no division here). patch0: 2 * K16 bytes, word
 * aligned. left: some lane of rq shifts left. */
#ifndef EQ_NHWC_CONV_MVE_BODY_H
#define EQ_NHWC_CONV_MVE_BODY_H

#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* Taps [*t0, *t1) of a window starting at `start` (dilation d) that fall inside [0, size). */
EQ_INLINE void eq_mve_tap_range(int32_t start, int32_t k, int32_t d, int32_t size, int32_t *t0, int32_t *t1)
{
    int32_t a = 0, b = k;
    while (a < b && start + a * d < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * d >= size) {
        --b;
    }
    *t0 = a;
    *t1 = b;
}

/* The patch of output pixel (oh, ow) for group g (its columns K..K16 are zero, written
 * once). A window inside the input with dilation_w 1 and groups 1 copies each kernel row
 * as one run of kernel_w * in_c bytes (16 at a time, the last under a predicate). */
static inline void eq_mve_conv_patch(const eq_conv2d_params *p, const int8_t *x_n, int32_t oh, int32_t ow, int32_t g,
                                     int32_t cin_g, int8_t *t)
{
    const int32_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
    const int32_t row_step = p->dilation_h * p->in_w * p->in_c, col_step = p->dilation_w * p->in_c;
    const int8x16_t zp16 = vdupq_n_s8((int8_t)p->x_zp);
    const mve_pred16_t tap_p = vctp8q((uint32_t)cin_g);
    /* offsets, not pointers: a window's corner may lie outside the input */
    int32_t roff = (ih0 * p->in_w + iw0) * p->in_c + g * cin_g, h0, h1, w0, w1, kh, kw, c;
    eq_mve_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &h0, &h1);
    eq_mve_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &w0, &w1);
    if (p->groups == 1 && p->dilation_w == 1 && h0 == 0 && h1 == p->kernel_h && w0 == 0 && w1 == p->kernel_w) {
        const int32_t run = p->kernel_w * cin_g;
        const int8_t *rowp = x_n + roff;
        for (kh = 0; kh < p->kernel_h; ++kh, rowp += row_step, t += run) {
            for (c = 0; c + 16 <= run; c += 16) {
                vstrbq_s8(t + c, vldrbq_s8(rowp + c));
            }
            if (c < run) {
                const mve_pred16_t pr = vctp8q((uint32_t)(run - c));
                vstrbq_p_s8(t + c, vldrbq_z_s8(rowp + c, pr), pr);
            }
        }
        return;
    }
    for (kh = 0; kh < p->kernel_h; ++kh, roff += row_step) {
        int32_t off = roff;
        for (kw = 0; kw < p->kernel_w; ++kw, t += cin_g, off += col_step) {
            const int inside = kh >= h0 && kh < h1 && kw >= w0 && kw < w1;
            const int8_t *src = x_n + (inside ? off : 0);
            if ((cin_g & 15) == 0) {
                for (c = 0; c < cin_g; c += 16) {
                    vstrbq_s8(t + c, inside ? vldrbq_s8(src + c) : zp16);
                }
            } else if (cin_g == 1) {
                *t = inside ? *src : (int8_t)p->x_zp;
            } else if (cin_g < 16) {
                vstrbq_p_s8(t, inside ? vldrbq_z_s8(src, tap_p) : zp16, tap_p);
            } else {
                for (c = 0; c < cin_g; c += 16) {
                    const mve_pred16_t pr = vctp8q((uint32_t)(cin_g - c));
                    vstrbq_p_s8(t + c, inside ? vldrbq_z_s8(src + c, pr) : zp16, pr);
                }
            }
        }
    }
}

EQ_INLINE void eq_nhwc_conv_mve_body(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g, const int8_t *x,
                                     const int8_t *w, const int32_t *bias, const eq_rq4 *rq, int left, int8_t *patch0,
                                     int8_t *y)
{
    const int32_t groups = p->groups;
    const int32_t blocks = (cout_g + 3) >> 2, k16 = (cin_g * p->kernel_h * p->kernel_w + 15) & ~15;
    const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c, image = p->in_h * p->in_w * p->in_c;
    const int32_t zp = p->y_zp, total = p->batch * out_h * out_w;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    int8_t *patch1 = patch0 + k16;
    int32_t q, g, j, i, n = 0, oh = 0, ow = 0;
    for (i = 0; i < 2 * k16; ++i) {  /* the padding columns (past K) stay zero */
        patch0[i] = 0;
    }
    for (q = 0; q < total; q += 2) {
        const int two = q + 1 < total;
        const int32_t n0 = n, oh0 = oh, ow0 = ow;
        int8_t *y0 = y + (size_t)q * out_c;
        if (++ow == out_w) {  /* the next output pixel, in NHWC order without dividing */
            ow = 0;
            if (++oh == out_h) {
                oh = 0;
                ++n;
            }
        }
        for (g = 0; g < groups; ++g) {
            const int8_t *wg = w + (size_t)g * blocks * k16 * 4;
            eq_mve_conv_patch(p, x + (size_t)n0 * image, oh0, ow0, g, cin_g, patch0);
            if (two) {  /* an odd last pixel leaves patch1 as it was: computed, never stored */
                eq_mve_conv_patch(p, x + (size_t)n * image, oh, ow, g, cin_g, patch1);
            }
            for (j = 0; j < cout_g; j += 4, wg += k16 * 4) {
                const int32_t jb = g * blocks * 4 + j;  /* the packed channel index */
                const eq_mve_rqv rv = eq_mve_rq_load(&rq[jb >> 2]);
                const int32x4_t b = vldrwq_s32(bias + jb);
                const mve_pred16_t sp = vctp32q((uint32_t)(cout_g - j));
                int32x4_t acc[2];
                eq_mve_dot4x2(patch0, patch1, wg, k16 >> 4, acc);
                vstrbq_p_s32(y0 + g * cout_g + j, eq_mve_out(eq_mve_rq(vaddq_s32(acc[0], b), &rv, left), zp, lo, hi),
                             sp);
                if (two) {
                    vstrbq_p_s32(y0 + out_c + g * cout_g + j,
                                 eq_mve_out(eq_mve_rq(vaddq_s32(acc[1], b), &rv, left), zp, lo, hi), sp);
                }
            }
        }
        if (two && ++ow == out_w) {
            ow = 0;
            if (++oh == out_h) {
                oh = 0;
                ++n;
            }
        }
    }
}

#endif /* __ARM_FEATURE_MVE */
#endif /* EQ_NHWC_CONV_MVE_BODY_H */
