/* QConv depthwise (groups == in_c, out_c = in_c * multiplier), int8, NHWC, portable C99.
 * Packing (packing.pack_depthwise isa "c"): w [kH*kW][out_c]; output channel co reads input
 * channel co / multiplier (walked as ci, j without dividing). bias_eff folded: a padded
 * tap adds x_zp * w. */
#include "eq_nhwc_check.h"

size_t eq_nhwc_depthwise_s8_c_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_depthwise_s8_c(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                 const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, mult, n, oh, ow, kh, kw, ci, j;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &mult);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_depthwise(p)) {
        return EQ_ERR_SHAPE;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                int32_t co = 0;
                for (ci = 0; ci < p->in_c; ++ci) {
                    for (j = 0; j < mult; ++j, ++co) {
                        const int8_t *w_t = w + co;
                        uint32_t acc = (uint32_t)bias[co];
                        for (kh = 0; kh < p->kernel_h; ++kh) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                            for (kw = 0; kw < p->kernel_w; ++kw, w_t += p->out_c) {
                                const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                                const int32_t v = ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w
                                    ? p->x_zp : x_n[((size_t)ih * p->in_w + iw) * p->in_c + ci];
                                acc += (uint32_t)(v * *w_t);
                            }
                        }
                        *y++ = eq_rq_out(eq_rq_c(eq_s32(acc), &rq[co]), p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
    return EQ_OK;
}
