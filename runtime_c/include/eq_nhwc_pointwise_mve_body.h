/* The body of eq_nhwc_pointwise_s8_mve (1x1 conv, NHWC, Cortex-M55 Helium), always inline so
 * generated code can specialise it with a pointer to a `static const` eq_conv2d_params
 * (eq_kernels_nhwc.h, "Shape specialisation"). Arguments are unchecked here.
 *
 * Per block of 4 output channels (outer loop: its bias and eq_rq4 stay in registers) and
 * output pixel: four VMLADAVA dot products per 16 input channels (eq_mve_dot4), the four
 * sums moved into a vector, requantized, clamped and stored as 4 bytes, all in one pass. */
#ifndef EQ_NHWC_POINTWISE_MVE_BODY_H
#define EQ_NHWC_POINTWISE_MVE_BODY_H

#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* One output pixel's 4 channels (n of them stored). */
#define EQ_PW_MVE_PIXEL(store)                                                                  \
    do {                                                                                        \
        const int32x4_t acc_ = vaddq_s32(eq_mve_dot4(xp, w, full, tail, tail_p), b);           \
        store(yp, eq_mve_out(eq_mve_rq(acc_, &q, left), zp, lo, hi));                           \
    } while (0)
#define EQ_PW_MVE_STORE4(y_, v_) vstrbq_s32(y_, v_)
#define EQ_PW_MVE_STOREP(y_, v_) vstrbq_p_s32(y_, v_, store_p)

EQ_INLINE void eq_nhwc_pointwise_mve_body(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                          const int32_t *bias, const eq_rq4 *rq, int left, int8_t *y)
{
    const int32_t c = p->in_c, co = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const int32_t full = c >> 4, tail = (c & 15) != 0, block_bytes = ((c + 15) & ~15) * 4;
    const int32_t px_step = p->stride_w * c, row_skip = (p->stride_h * p->in_w - out_w * p->stride_w) * c;
    const int32_t image_skip = (p->in_h - out_h * p->stride_h) * p->in_w * c;
    const int32_t zp = p->y_zp, total = p->batch * out_h * out_w;
    const int contiguous = p->stride_h == 1 && p->stride_w == 1;  /* input pixels follow each other */
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    const mve_pred16_t tail_p = vctp8q((uint32_t)(c & 15));
    int32_t j;
    for (j = 0; j < co; j += 4, w += block_bytes, ++rq) {
        const int32x4_t b = vldrwq_s32(bias + j);
        const eq_mve_rqv q = eq_mve_rq_load(rq);
        const mve_pred16_t store_p = vctp32q((uint32_t)(co - j));
        const int8_t *xp = x;
        int8_t *yp = y + j;
        int32_t k, ow = 0, oh = 0;
        if (contiguous && co - j >= 4) {
            for (k = 0; k < total; ++k, xp += c, yp += co) {
                EQ_PW_MVE_PIXEL(EQ_PW_MVE_STORE4);
            }
            continue;
        }
        for (k = 0; k < total; ++k, yp += co) {
            EQ_PW_MVE_PIXEL(EQ_PW_MVE_STOREP);
            /* the next output pixel's input: along the row, then the next used row / image */
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
    }
}

#undef EQ_PW_MVE_PIXEL
#undef EQ_PW_MVE_STORE4
#undef EQ_PW_MVE_STOREP

#endif /* __ARM_FEATURE_MVE */
#endif /* EQ_NHWC_POINTWISE_MVE_BODY_H */
