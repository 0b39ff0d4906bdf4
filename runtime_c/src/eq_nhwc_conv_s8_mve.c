/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), Cortex-M55 Helium (MVE).
 * Per output pixel and group, every block of 4 output channels takes four VMLADAVA dot
 * products per 16 columns of K = kH * kW * in_c/groups (ordered (kh, kw, ci)) and is
 * requantized and stored as 4 bytes. When in_c/groups is a multiple of 16 the columns come
 * straight from the input, 16 at a time through a list of chunk addresses (the x_zp row for
 * padded taps: bias_eff is folded); otherwise an im2col patch is copied first (under tail
 * predicates). Packing "mve" (packing.pack_conv): per group, blocks of 4 channels x 16
 * columns, K16 and each group's channels padded to 4; eq_rq4 blocks per group. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* scratch: the im2col patch (K16 bytes), or, when in_c/groups % 16 == 0, the chunk
 * addresses (K / 16 pointers) and a row of x_zp (in_c/groups bytes). */
size_t eq_nhwc_conv_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g, cout_g, k;
    if (p == NULL || eq_conv2d_check(p, &cin_g, &cout_g) != EQ_OK) {
        return 0;
    }
    k = cin_g * p->kernel_h * p->kernel_w;
    if ((cin_g & 15) == 0) {
        return (size_t)(k >> 4) * sizeof(const int8_t *) + (size_t)cin_g + 4u;
    }
    return (size_t)((k + 15) & ~15) + 4u;
}

/* cin_g bytes from src (or x_zp) to dst, 16 at a time under tail predicates. */
static inline void copy_tap(int8_t *dst, const int8_t *src, int32_t cin_g, int inside, int8x16_t zp16)
{
    int32_t c;
    for (c = 0; c < cin_g; c += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(cin_g - c));
        vstrbq_p_s8(dst + c, inside ? vldrbq_z_s8(src + c, p) : zp16, p);
    }
}

/* in_c/groups % 16 == 0: per output pixel, the addresses of its K / 16 chunks of 16 input
 * channels (a tap's chunks follow each other; a padded tap's read the x_zp row). */
static void direct(const eq_conv2d_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                   const eq_rq4 *rq, int left, const int8_t **chunk, int32_t cin_g, int32_t cout_g, int8_t *y)
{
    const int32_t taps = p->kernel_h * p->kernel_w, nchunk = taps * (cin_g >> 4);
    const int32_t blocks = (cout_g + 3) >> 2, block_bytes = nchunk * 64;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    int8_t *zp_row = (int8_t *)(chunk + nchunk);
    int32_t n, oh, ow, kh, kw, c, g, j;
    for (c = 0; c < cin_g; ++c) {
        zp_row[c] = (int8_t)p->x_zp;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += p->out_c) {
                for (g = 0; g < p->groups; ++g) {
                    const int8_t *wg = w + (size_t)g * blocks * block_bytes;
                    const int8_t **cp = chunk;
                    for (kh = 0; kh < p->kernel_h; ++kh) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                        for (kw = 0; kw < p->kernel_w; ++kw) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                            const int inside = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w;
                            const int8_t *src = inside ? x_n + ((size_t)ih * p->in_w + iw) * p->in_c + g * cin_g : zp_row;
                            for (c = 0; c < cin_g; c += 16) {
                                *cp++ = src + c;
                            }
                        }
                    }
                    for (j = 0; j < cout_g; j += 4, wg += block_bytes) {
                        const int32_t jb = g * blocks * 4 + j;
                        const eq_mve_rqv q = eq_mve_rq_load(&rq[jb >> 2]);
                        const int32x4_t acc = vaddq_s32(eq_mve_dot4_ptrs(chunk, wg, nchunk), vldrwq_s32(bias + jb));
                        const int32x4_t v = eq_mve_out(eq_mve_rq(acc, &q, left), p->y_zp, lo, hi);
                        if (cout_g - j >= 4) {
                            vstrbq_s32(y + g * cout_g + j, v);
                        } else {
                            vstrbq_p_s32(y + g * cout_g + j, v, vctp32q((uint32_t)(cout_g - j)));
                        }
                    }
                }
            }
        }
    }
}

eq_status eq_nhwc_conv_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, k, blocks, full, g, j, kh, kw, n, oh, ow;
    int left, tail;
    int8_t *patch;
    int8x16_t zp16;
    int32x4_t lo, hi;
    mve_pred16_t tail_p, tap_p;
    int32_t row_step, col_step;
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
    k = cin_g * p->kernel_h * p->kernel_w;
    full = k >> 4;
    tail = (k & 15) != 0;
    tail_p = vctp8q((uint32_t)(k & 15));
    left = eq_mve_any_left(rq, blocks * p->groups);
    patch = (int8_t *)eq_align4_s16(scratch);
    zp16 = vdupq_n_s8((int8_t)p->x_zp);
    tap_p = vctp8q((uint32_t)cin_g);
    row_step = p->dilation_h * p->in_w * p->in_c;
    col_step = p->dilation_w * p->in_c;
    if ((cin_g & 15) == 0) {
        direct(p, x, w, bias, rq, left, (const int8_t **)patch, cin_g, cout_g, y);
        return EQ_OK;
    }
    lo = vdupq_n_s32(p->act_min);
    hi = vdupq_n_s32(p->act_max);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += p->out_c) {
                for (g = 0; g < p->groups; ++g) {
                    const int8_t *wg = w + (size_t)g * blocks * ((k + 15) & ~15) * 4;
                    const int32_t ih0 = oh * p->stride_h - p->pad_top, iw0 = ow * p->stride_w - p->pad_left;
                    /* offsets, not pointers: a window's corner may lie outside the input */
                    int32_t roff = (ih0 * p->in_w + iw0) * p->in_c + g * cin_g;
                    int8_t *t = patch;
                    int32_t h0, h1, w0, w1;
                    eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &h0, &h1);
                    eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &w0, &w1);
                    for (kh = 0; kh < p->kernel_h; ++kh, roff += row_step) {
                        int32_t off = roff;
                        for (kw = 0; kw < p->kernel_w; ++kw, t += cin_g, off += col_step) {
                            const int inside = kh >= h0 && kh < h1 && kw >= w0 && kw < w1;
                            const int8_t *src = inside ? x_n + off : x_n;
                            if (cin_g == 1) {
                                *t = inside ? *src : (int8_t)p->x_zp;
                            } else if (cin_g < 16) {  /* one predicated copy */
                                vstrbq_p_s8(t, inside ? vldrbq_z_s8(src, tap_p) : zp16, tap_p);
                            } else {
                                copy_tap(t, src, cin_g, inside, zp16);
                            }
                        }
                    }
                    for (j = 0; j < cout_g; j += 4, wg += ((k + 15) & ~15) * 4) {
                        const int32_t jb = g * blocks * 4 + j;  /* the packed channel index */
                        const eq_mve_rqv q = eq_mve_rq_load(&rq[jb >> 2]);
                        const int32x4_t acc = vaddq_s32(eq_mve_dot4(patch, wg, full, tail, tail_p),
                                                        vldrwq_s32(bias + jb));
                        vstrbq_p_s32(y + g * cout_g + j, eq_mve_out(eq_mve_rq(acc, &q, left), p->y_zp, lo, hi),
                                     vctp32q((uint32_t)(cout_g - j)));
                    }
                }
            }
        }
    }
    return EQ_OK;
}

#endif
