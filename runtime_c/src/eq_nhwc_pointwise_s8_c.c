/* QConv 1x1 (groups 1, no padding, any stride), int8, NHWC, portable C99: per output pixel
 * a matrix-vector product of the input pixel's in_c channels with w [out_c][in_c]
 * (packing.pack_conv isa "c"), two output channels per pass sharing each input load. */
#include "eq_nhwc_check.h"

size_t eq_nhwc_pointwise_s8_c_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_pointwise_s8_c(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                 const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, n, oh, ow, oc, ci;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &cout_g);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_pointwise(p)) {
        return EQ_ERR_SHAPE;
    }
    for (n = 0; n < p->batch; ++n) {
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                const int8_t *x_p = x + (((size_t)n * p->in_h + (size_t)oh * p->stride_h) * p->in_w +
                                         (size_t)ow * p->stride_w) * p->in_c;
                for (oc = 0; oc + 1 < p->out_c; oc += 2) {
                    const int8_t *w0 = w + (size_t)oc * p->in_c;
                    const int8_t *w1 = w0 + p->in_c;
                    uint32_t a0 = (uint32_t)bias[oc], a1 = (uint32_t)bias[oc + 1];
                    for (ci = 0; ci < p->in_c; ++ci) {
                        a0 += (uint32_t)(x_p[ci] * w0[ci]);
                        a1 += (uint32_t)(x_p[ci] * w1[ci]);
                    }
                    *y++ = eq_rq_out(eq_rq_c(eq_s32(a0), &rq[oc]), p->y_zp, p->act_min, p->act_max);
                    *y++ = eq_rq_out(eq_rq_c(eq_s32(a1), &rq[oc + 1]), p->y_zp, p->act_min, p->act_max);
                }
                if (oc < p->out_c) {  /* an odd out_c ends with one channel */
                    const int8_t *w0 = w + (size_t)oc * p->in_c;
                    uint32_t a0 = (uint32_t)bias[oc];
                    for (ci = 0; ci < p->in_c; ++ci) {
                        a0 += (uint32_t)(x_p[ci] * w0[ci]);
                    }
                    *y++ = eq_rq_out(eq_rq_c(eq_s32(a0), &rq[oc]), p->y_zp, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}
