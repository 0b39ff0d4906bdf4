/* QConv depthwise 3x3 (multiplier 1, dilation 1, stride 1 or 2, pads <= 1), int8, NHWC,
 * portable C99. Same packing as eq_nhwc_depthwise_s8_c (w [9][C]): an output pixel whose
 * window lies inside the input runs the 9 taps unrolled; a border pixel replaces its
 * outside taps by x_zp (bias_eff is folded). */
#include "eq_nhwc_check.h"

size_t eq_nhwc_dw3x3_s8_c_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_dw3x3_s8_c(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                             const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, mult, n, oh, ow, c, t;
    const int32_t C = p ? p->in_c : 0;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &mult);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_dw3x3(p)) {
        return EQ_ERR_SHAPE;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int8_t *tap[9];
                int inside = 1;
                for (t = 0; t < 9; ++t) {  /* the 9 taps' pixels; NULL outside the input */
                    const int32_t ih = ih0 + (t >= 6 ? 2 : t >= 3 ? 1 : 0);
                    const int32_t iw = iw0 + t - (t >= 6 ? 6 : t >= 3 ? 3 : 0);
                    const int ok = ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w;
                    tap[t] = ok ? x_n + ((size_t)ih * p->in_w + iw) * C : NULL;
                    inside &= ok;
                }
                for (c = 0; c < C; ++c) {
                    uint32_t acc = (uint32_t)bias[c];
                    if (inside) {
                        /* nine products: |sum| <= 9 * 128 * 127, an int32 */
                        acc += (uint32_t)(tap[0][c] * w[c] + tap[1][c] * w[C + c] + tap[2][c] * w[2 * C + c] +
                                          tap[3][c] * w[3 * C + c] + tap[4][c] * w[4 * C + c] +
                                          tap[5][c] * w[5 * C + c] + tap[6][c] * w[6 * C + c] +
                                          tap[7][c] * w[7 * C + c] + tap[8][c] * w[8 * C + c]);
                    } else {
                        for (t = 0; t < 9; ++t) {
                            acc += (uint32_t)((tap[t] != NULL ? tap[t][c] : p->x_zp) * w[t * C + c]);
                        }
                    }
                    *y++ = eq_rq_out(eq_rq_c(eq_s32(acc), &rq[c]), p->y_zp, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}
