/* QConv depthwise (groups == in_c, any kernel, stride, dilation, pads, multiplier), int8,
 * NHWC, Cortex-M DSP. Packing "dsp" (packing.pack_depthwise): per 4 output channels and
 * tap, int16 weight pairs (w0|w2<<16), (w1|w3<<16); channels padded to 4; w word aligned.
 * Per output pixel the taps' pixels are found once (the x_zp row for taps outside the
 * input: bias_eff is folded); then with multiplier 1, per 4 channels and tap: one word of
 * x, SXTB16 into (c0, c2), (c1, c3), one LDRD of weights, SMLABB/SMLATT into four
 * accumulators. A multiplier > 1 (rare) runs per output channel. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dw3x3_dsp_body.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

/* scratch: the taps' pointers (kH * kW), then a row of x_zp (in_c rounded up to 4). */
size_t eq_nhwc_depthwise_s8_dsp_scratch_size(const eq_conv2d_params *p)
{
    if (p == NULL || p->in_c < 1 || p->kernel_h < 1 || p->kernel_w < 1) {
        return 0;
    }
    return (size_t)p->kernel_h * (size_t)p->kernel_w * sizeof(const int8_t *) +
           (size_t)((p->in_c + 3) & ~3) + 4u;
}

/* int16 weight of output channel c at tap t (packing "dsp"). */
static int32_t weight(const uint32_t *w, int32_t taps, int32_t c, int32_t t)
{
    const uint32_t word = w[((size_t)(c >> 2) * taps + t) * 2 + (c & 1)];
    return (int32_t)(int16_t)((c & 2) != 0 ? word >> 16 : word);
}

eq_status eq_nhwc_depthwise_s8_dsp(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                   const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, mult, n, oh, ow, kh, kw, c, t, j, taps, C, C4;
    const int8_t **tap;
    int8_t *zp_row;
    const uint32_t *w32 = (const uint32_t *)w;
    int narrow;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &mult);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_depthwise(p)) {
        return EQ_ERR_SHAPE;
    }
    if (scratch == NULL || ((uintptr_t)w & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    taps = p->kernel_h * p->kernel_w;
    C = p->in_c;
    C4 = mult == 1 ? C & ~3 : 0;
    narrow = p->act_min > -128 || p->act_max < 127;
    tap = (const int8_t **)eq_align4_s16(scratch);
    zp_row = (int8_t *)(tap + taps);
    for (c = 0; c < ((C + 3) & ~3); ++c) {
        zp_row[c] = (int8_t)p->x_zp;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += p->out_c) {
                t = 0;
                for (kh = 0; kh < p->kernel_h; ++kh) {
                    const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                    for (kw = 0; kw < p->kernel_w; ++kw) {
                        const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                        tap[t++] = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w
                            ? x_n + ((size_t)ih * p->in_w + iw) * C : zp_row;
                    }
                }
                for (c = 0; c < C4; c += 4) {
                    const uint32_t *wg = w32 + (size_t)(c >> 2) * taps * 2;
                    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
                    for (t = 0; t < taps; ++t, wg += 2) {
                        EQ_DW_TAP(eq_ld32(tap[t] + c), wg);
                    }
                    eq_dw_store4(a0, a1, a2, a3, rq + c, p->y_zp, p->act_min, p->act_max, narrow, y + c);
                }
                for (c = C4; c < C; ++c) {  /* the tail (or every channel when multiplier > 1) */
                    for (j = 0; j < mult; ++j) {
                        const int32_t co = mult == 1 ? c : c * mult + j;
                        uint32_t acc = (uint32_t)bias[co];
                        for (t = 0; t < taps; ++t) {
                            acc += (uint32_t)(tap[t][c] * weight(w32, taps, co, t));
                        }
                        y[co] = (int8_t)eq_dsp_out(eq_dsp_rq((int32_t)acc, &rq[co]), p->y_zp, p->act_min, p->act_max, 1);
                    }
                }
            }
        }
    }
    return EQ_OK;
}

#endif
