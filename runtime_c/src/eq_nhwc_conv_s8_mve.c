/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), Cortex-M55 Helium (MVE).
 * Per pair of output pixels and group: both im2col patches (K = kH * kW * in_c/groups int8,
 * ordered (kh, kw, ci); padded taps hold x_zp since bias_eff is folded; zero columns up to
 * K16) are copied 16 bytes at a time (whole chunks when in_c/groups % 16 == 0, predicated
 * otherwise), then every block of 4 output channels takes eight VMLADAVA per 16 columns
 * (eq_mve_dot4x2: each weight vector serves both pixels) and the two pixels' 4 outputs are
 * requantized and stored. Packing "mve" (packing.pack_conv): per group, blocks of 4
 * channels x 16 columns, K16 and each group's channels padded to 4; eq_rq4 blocks. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* scratch: two patches of K16 bytes. */
size_t eq_nhwc_conv_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g, cout_g;
    if (p == NULL || eq_conv2d_check(p, &cin_g, &cout_g) != EQ_OK) {
        return 0;
    }
    return (size_t)((cin_g * p->kernel_h * p->kernel_w + 15) & ~15) * 2u + 4u;
}

/* One output pixel's patch for group g (its columns K..K16 are zero, written once). A
 * window inside the input with dilation_w 1 and groups 1 copies each kernel row as one run
 * of kernel_w * in_c bytes (16 at a time, the last under a predicate), unchecked. */
static inline void fill_patch(const eq_conv2d_params *p, const int8_t *x_n, const eq_px *px, int32_t g, int32_t cin_g,
                       int8_t *t)
{
    const int32_t ih0 = px->oh * p->stride_h - p->pad_top, iw0 = px->ow * p->stride_w - p->pad_left;
    const int32_t row_step = p->dilation_h * p->in_w * p->in_c, col_step = p->dilation_w * p->in_c;
    const int8x16_t zp16 = vdupq_n_s8((int8_t)p->x_zp);
    const mve_pred16_t tap_p = vctp8q((uint32_t)cin_g);
    /* offsets, not pointers: a window's corner may lie outside the input */
    int32_t roff = (ih0 * p->in_w + iw0) * p->in_c + g * cin_g, h0, h1, w0, w1, kh, kw, c;
    eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &h0, &h1);
    eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &w0, &w1);
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

eq_status eq_nhwc_conv_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, k16, blocks, total, q, g, j, i;
    int left;
    int8_t *patch0, *patch1;
    int32x4_t lo, hi;
    eq_px px = {0, 0, 0};
    eq_status st;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL || scratch == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    blocks = (cout_g + 3) >> 2;
    if (!eq_rq4_ok(rq, blocks * p->groups) || ((uintptr_t)w & 3u) != 0 || ((uintptr_t)rq & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    k16 = (cin_g * p->kernel_h * p->kernel_w + 15) & ~15;
    left = eq_mve_any_left(rq, blocks * p->groups);
    patch0 = (int8_t *)eq_align4_s16(scratch);
    patch1 = patch0 + k16;
    for (i = 0; i < 2 * k16; ++i) {  /* the padding columns (past K) stay zero */
        patch0[i] = 0;
    }
    lo = vdupq_n_s32(p->act_min);
    hi = vdupq_n_s32(p->act_max);
    total = p->batch * p->out_h * p->out_w;
    for (q = 0; q < total; q += 2) {
        const int two = q + 1 < total;
        const eq_px px0 = px;
        int8_t *y0 = y + (size_t)q * p->out_c;
        eq_px_next(&px, p->out_h, p->out_w);
        for (g = 0; g < p->groups; ++g) {
            const int8_t *wg = w + (size_t)g * blocks * k16 * 4;
            fill_patch(p, x + (size_t)px0.n * p->in_h * p->in_w * p->in_c, &px0, g, cin_g, patch0);
            if (two) {  /* an odd last pixel leaves patch1 as it was: computed, never stored */
                fill_patch(p, x + (size_t)px.n * p->in_h * p->in_w * p->in_c, &px, g, cin_g, patch1);
            }
            for (j = 0; j < cout_g; j += 4, wg += k16 * 4) {
                const int32_t jb = g * blocks * 4 + j;  /* the packed channel index */
                const eq_mve_rqv rv = eq_mve_rq_load(&rq[jb >> 2]);
                const int32x4_t b = vldrwq_s32(bias + jb);
                const mve_pred16_t sp = vctp32q((uint32_t)(cout_g - j));
                int32x4_t acc[2];
                eq_mve_dot4x2(patch0, patch1, wg, k16 >> 4, acc);
                vstrbq_p_s32(y0 + g * cout_g + j,
                             eq_mve_out(eq_mve_rq(vaddq_s32(acc[0], b), &rv, left), p->y_zp, lo, hi), sp);
                if (two) {
                    vstrbq_p_s32(y0 + p->out_c + g * cout_g + j,
                                 eq_mve_out(eq_mve_rq(vaddq_s32(acc[1], b), &rv, left), p->y_zp, lo, hi), sp);
                }
            }
        }
        if (two) {
            eq_px_next(&px, p->out_h, p->out_w);
        }
    }
    return EQ_OK;
}

#endif
