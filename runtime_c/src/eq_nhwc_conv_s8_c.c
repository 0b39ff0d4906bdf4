/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), portable C99.
 * Packing (eq_kernels_nhwc.h, packing.pack_conv isa "c"): w [out_c][K], K ordered
 * (kh, kw, ci) over the group's input channels; bias_eff folded, so a padded tap adds
 * x_zp * w. Accumulation modulo 2^32 (eq_kernels_nhwc.h, "Accumulator"). */
#include "eq_nhwc_check.h"

size_t eq_nhwc_conv_s8_c_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_conv_s8_c(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                            const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, n, oh, ow, g, oc, kh, kw, ci;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &cout_g);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                for (g = 0; g < p->groups; ++g) {
                    for (oc = g * cout_g; oc < (g + 1) * cout_g; ++oc) {
                        const int8_t *w_c = w + (size_t)oc * cin_g * p->kernel_h * p->kernel_w;
                        uint32_t acc = (uint32_t)bias[oc];
                        for (kh = 0; kh < p->kernel_h; ++kh) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                            for (kw = 0; kw < p->kernel_w; ++kw, w_c += cin_g) {
                                const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                                if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) {
                                    for (ci = 0; ci < cin_g; ++ci) {  /* padding reads x_zp */
                                        acc += (uint32_t)(p->x_zp * w_c[ci]);
                                    }
                                } else {
                                    const int8_t *x_t = x_n + ((size_t)ih * p->in_w + iw) * p->in_c + g * cin_g;
                                    for (ci = 0; ci < cin_g; ++ci) {
                                        acc += (uint32_t)(x_t[ci] * w_c[ci]);
                                    }
                                }
                            }
                        }
                        *y++ = eq_rq_out(eq_rq_c(eq_s32(acc), &rq[oc]), p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
    return EQ_OK;
}
