/* The body of eq_nhwc_pointwise_s8_dsp (1x1 conv, NHWC, Cortex-M DSP), always inline so
 * that generated code can specialise it: called with a pointer to a `static const`
 * eq_conv2d_params, the compiler folds every dimension, stride and clamp into the loops
 * (eq_kernels_nhwc.h, "Shape specialisation"). Arguments are unchecked here: the kernel
 * file checks them; generated code proves them at compile time.
 *
 * Per pair of output pixels, the two input pixels become one interleaved dot-order int16
 * patch (eq_nhwc_dsp.h), then every pair of output channels runs the 2x2 SMLAD block over
 * it and requantizes in the same loop: per 4 input channels and 4 outputs, 4 patch loads,
 * 2 weight loads, 4 SXTB16 and 8 SMLAD. The accumulators of the pixel pair go to an int32
 * row, requantized by eq_dsp_requant after the last channel pair.
 * work: 4 * K4 bytes of patch, then 8 * out_c (rounded up to even) bytes of accumulators,
 * word aligned. all_fast: no channel has shift >= 0 (eq_rq.rs == -1). */
#ifndef EQ_NHWC_POINTWISE_DSP_BODY_H
#define EQ_NHWC_POINTWISE_DSP_BODY_H

#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

/* Two pixels' channels (x1 == x0 when there is one) into the interleaved patch. */
EQ_INLINE void eq_dsp_patch2(const int8_t *x0, const int8_t *x1, int32_t c, uint32_t *patch)
{
    /* c4 and the tail test fold when c is a compile-time constant (a specialised layer) */
    const int32_t c4 = c & ~3;
    int32_t k;
    for (k = 0; k < c4; k += 4, patch += 4) {
        eq_dsp_put4(patch, eq_ld32(x0 + k));
        eq_dsp_put4(patch + 2, eq_ld32(x1 + k));
    }
    if ((c & 3) != 0) {  /* a partial last block: zeros beside the values (their weights are 0) */
        int16_t *h = (int16_t *)patch;
        int32_t j;
        patch[0] = patch[1] = patch[2] = patch[3] = 0;
        for (j = 0; j < (c & 3); ++j) {
            h[eq_dsp_slot(j, 0)] = x0[c4 + j];
            h[eq_dsp_slot(j, 1)] = x1[c4 + j];
        }
    }
}

EQ_INLINE void eq_nhwc_pointwise_dsp_body(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                          const int32_t *bias, const eq_rq *rq, int all_fast, uint32_t *work,
                                          int8_t *y)
{
    /* Locals, not p->...: every int8 store may alias the params, which would make the
     * compiler reload them after each output. */
    const int32_t c = p->in_c, blocks = (c + 3) >> 2, co = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const int32_t px_step = p->stride_w * c, row_skip = (p->stride_h * p->in_w - out_w * p->stride_w) * c;
    const int32_t image_skip = (p->in_h - out_h * p->stride_h) * p->in_w * c;
    const int32_t zp = p->y_zp, lo = p->act_min, hi = p->act_max;
    const int32_t total = p->batch * out_h * out_w;
    const uint32_t *w32 = (const uint32_t *)w;
    uint32_t *patch = work;
    int32_t *acc = (int32_t *)(work + blocks * 4);  /* [channel][pixel], out_c rounded up to even */
    const int8_t *xp = x;
    int32_t q, ow = 0, oh = 0;
    for (q = 0; q < total; q += 2) {
        const int two = q + 1 < total;
        const int8_t *x0 = xp, *x1 = xp;
        int8_t *y0 = y + (size_t)q * co;
        const uint32_t *wj = w32;
        int32_t j, k;
        /* the input pixels of output pixels q and q + 1: along a row by stride_w, then to
         * the next used input row and, after out_h rows, to the next image */
        for (k = 0; k <= two; ++k) {
            x1 = xp;
            xp += px_step;
            if (++ow == out_w) {
                ow = 0;
                xp += row_skip;
                if (++oh == out_h) {
                    oh = 0;
                    xp += image_skip;
                }
            }
        }
        eq_dsp_patch2(x0, x1, c, patch);
        for (j = 0; j < co; j += 2, wj += 2 * blocks) {
            eq_dsp_mm2x2(patch, wj, blocks, bias[j], bias[j + 1], acc + 2 * j);
        }
        if (two) {
            eq_dsp_requant(acc, co, rq, zp, lo, hi, all_fast, y0, co);
        } else {  /* a last odd pixel: the second one is a copy, written nowhere */
            eq_dsp_requant_general(acc, co, rq, zp, lo, hi, y0, 0);
        }
    }
}

#endif /* __ARM_FEATURE_DSP */
#endif /* EQ_NHWC_POINTWISE_DSP_BODY_H */
