/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), Cortex-M55 Helium (MVE).
 * Per output pixel and group: the im2col patch (K = kH * kW * in_c/groups int8, ordered
 * (kh, kw, ci); padded taps hold x_zp since bias_eff is folded) is copied 16 bytes at a
 * time under predicates, then every block of 4 output channels of the group takes four
 * VMLADAVA dot products per 16 columns (eq_mve_dot4) and is requantized and stored as
 * 4 bytes. Packing "mve" (packing.pack_conv): per group, blocks of 4 channels x 16
 * columns, K16 and each group's channels padded to 4; eq_rq4 blocks per group. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_conv_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g, cout_g;
    if (p == NULL || eq_conv2d_check(p, &cin_g, &cout_g) != EQ_OK) {
        return 0;
    }
    return (size_t)((cin_g * p->kernel_h * p->kernel_w + 15) & ~15) + 4u;
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

eq_status eq_nhwc_conv_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, k, blocks, full, g, j, kh, kw, n, oh, ow;
    int left, tail;
    int8_t *patch;
    int8x16_t zp16;
    int32x4_t lo, hi;
    mve_pred16_t tail_p;
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
    lo = vdupq_n_s32(p->act_min);
    hi = vdupq_n_s32(p->act_max);
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += p->out_c) {
                for (g = 0; g < p->groups; ++g) {
                    const int8_t *wg = w + (size_t)g * blocks * ((k + 15) & ~15) * 4;
                    int8_t *t = patch;
                    for (kh = 0; kh < p->kernel_h; ++kh) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                        for (kw = 0; kw < p->kernel_w; ++kw, t += cin_g) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                            const int inside = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w;
                            const int8_t *src = x_n + ((size_t)ih * p->in_w + iw) * p->in_c + g * cin_g;
                            if (cin_g == 1) {
                                *t = inside ? *src : (int8_t)p->x_zp;
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
