/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), Cortex-M DSP.
 * Per pair of output pixels and group: the two im2col patches (K = kH * kW * in_c/groups,
 * ordered (kh, kw, ci); padded taps hold x_zp since bias_eff is folded) go into one
 * interleaved dot-order int16 patch (eq_nhwc_dsp.h), then every channel pair of the group
 * runs the 2x2 SMLAD block over it, and the pair of pixels is requantized in one loop.
 * Packing "dsp" (packing.pack_conv): per group, channel pairs per 4-block, K4 and odd groups
 * padded; w word aligned. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

static int32_t pairs_per_group(const eq_conv2d_params *p, int32_t *cout_g)
{
    int32_t cin_g;
    (void)eq_exact_quotient(p->in_c, p->groups, &cin_g);
    (void)eq_exact_quotient(p->out_c, p->groups, cout_g);
    return (*cout_g + 1) >> 1;
}

size_t eq_nhwc_conv_s8_dsp_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g, cout_g;
    if (p == NULL || eq_conv2d_check(p, &cin_g, &cout_g) != EQ_OK) {
        return 0;
    }
    return (size_t)((cin_g * p->kernel_h * p->kernel_w + 3) >> 2) * 16u +
           (size_t)pairs_per_group(p, &cout_g) * 16u + 4u;
}

/* One pixel's taps (for one group) into its half of the 2-pixel patch. */
static void fill_patch(const eq_conv2d_params *p, const int8_t *x_n, int32_t oh, int32_t ow, int32_t ci0,
                       int32_t cin_g, int32_t pix, uint32_t *patch)
{
    const uint32_t zp4 = 0x01010101u * (uint8_t)p->x_zp;
    int16_t *h = (int16_t *)patch;
    int32_t kh, kw, c, k = 0;
    for (kh = 0; kh < p->kernel_h; ++kh) {
        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
        for (kw = 0; kw < p->kernel_w; ++kw, k += cin_g) {
            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
            const int inside = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w;
            const int8_t *src = inside ? x_n + ((size_t)ih * p->in_w + iw) * p->in_c + ci0 : x_n;
            if ((cin_g & 3) == 0) {  /* whole 4-blocks per tap: SXTB16 straight into place */
                uint32_t *blk = patch + (k >> 2) * 4 + pix * 2;
                for (c = 0; c < cin_g; c += 4, blk += 4) {
                    eq_dsp_put4(blk, inside ? eq_ld32(src + c) : zp4);
                }
            } else {
                for (c = 0; c < cin_g; ++c) {
                    h[eq_dsp_slot(k + c, pix)] = inside ? src[c] : (int16_t)p->x_zp;
                }
            }
        }
    }
}

eq_status eq_nhwc_conv_s8_dsp(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, pairs, blocks, k, total, q, g, j;
    int all_fast;
    eq_px px = {0, 0, 0};
    const size_t image = p ? (size_t)p->in_h * p->in_w * p->in_c : 0;
    uint32_t *patch;
    int32_t *acc;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    if (scratch == NULL || ((uintptr_t)w & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    pairs = (cout_g + 1) >> 1;
    k = cin_g * p->kernel_h * p->kernel_w;
    blocks = (k + 3) >> 2;
    all_fast = eq_rq_all_fast(rq, p->out_c);
    patch = (uint32_t *)eq_align4_s16(scratch);
    acc = (int32_t *)(patch + blocks * 4);
    total = p->batch * p->out_h * p->out_w;
    for (q = 0; q < total; q += 2) {
        const int two = q + 1 < total;
        eq_px px0 = px, px1;
        eq_px_next(&px, p->out_h, p->out_w);
        px1 = two ? px : px0;
        if (two) {
            eq_px_next(&px, p->out_h, p->out_w);
        }
        for (g = 0; g < p->groups; ++g) {
            const uint32_t *wg = (const uint32_t *)w + (size_t)g * pairs * blocks * 2;
            const int32_t *bg = bias + g * pairs * 2;
            int8_t *y0 = y + (size_t)q * p->out_c + g * cout_g;
            if ((k & 3) != 0) {  /* the partial last block's padding must be 0 (weights are 0) */
                patch[(blocks - 1) * 4] = patch[(blocks - 1) * 4 + 1] = 0;
                patch[(blocks - 1) * 4 + 2] = patch[(blocks - 1) * 4 + 3] = 0;
            }
            fill_patch(p, x + (size_t)px0.n * image, px0.oh, px0.ow, g * cin_g, cin_g, 0, patch);
            fill_patch(p, x + (size_t)px1.n * image, px1.oh, px1.ow, g * cin_g, cin_g, 1, patch);
            for (j = 0; j < pairs; ++j, wg += 2 * blocks) {
                eq_dsp_mm2x2(patch, wg, blocks, bg[2 * j], bg[2 * j + 1], acc + 4 * j);
            }
            /* pixel 1 lies out_c bytes after pixel 0; an odd group's padding channel and an odd
             * end's copied pixel are computed but never stored */
            if (two) {
                eq_dsp_requant(acc, cout_g, rq + g * pairs * 2, p->y_zp, p->act_min, p->act_max, all_fast,
                               y0, p->out_c);
            } else {
                eq_dsp_requant_general(acc, cout_g, rq + g * pairs * 2, p->y_zp, p->act_min, p->act_max, y0, 0);
            }
        }
    }
    return EQ_OK;
}

#endif
