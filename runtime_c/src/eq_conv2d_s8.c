/* QConv, int8, NCHW, general: groups (incl. depthwise with channel multiplier), stride,
 * dilation, asymmetric padding, batch. Semantics in eq_kernels.h / docs/semantics.md.
 *
 * Loop order: n, group, output channel, output row, output col, then the group's input
 * channels and the kernel taps. A tap outside the input is skipped, which is the same as
 * padding with x_zp (its (x - x_zp) is 0). The accumulator is int32: the compiler proved
 * |bias| + K * 255 * 127 < 2^31 for this layer (K = in_c/groups * kernel_h * kernel_w). */
#include "eq_internal.h"

/* Bytes for the im2col fast path: one patch of K = in_c/groups * kH * kW int16 values,
 * plus 4 bytes of alignment slack. Without scratch (NULL) the direct path runs instead;
 * both give the same bytes. */
size_t eq_conv2d_s8_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g;
    if (p == NULL || !eq_exact_quotient(p->in_c, p->groups, &cin_g)) {
        return 0;
    }
    return (size_t)cin_g * (size_t)p->kernel_h * (size_t)p->kernel_w * 2u + 4u;
}

/* im2col path: per output pixel and group, gather the patch (x - x_zp as int16, 0 for
 * padding taps) once, then one contiguous dot product per output channel of the group
 * (the weights of an output channel are contiguous in [Co, Ci/g, kH, kW] order). */
static void conv_im2col(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                        const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *mult, const int32_t *shift, int16_t *patch, int8_t *y)
{
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t k_taps = cin_g * p->kernel_h * p->kernel_w;
    int32_t n, g, oh, ow, ic, kh, kw, oc;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_c * in_hw;
        int8_t *y_n = y + (size_t)n * p->out_c * out_hw;
        for (g = 0; g < p->groups; ++g) {
            const int8_t *x_g = x_n + (size_t)g * cin_g * in_hw;
            for (oh = 0; oh < p->out_h; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    int32_t i = 0;  /* patch position, stored at eq_dot_slot(i) */
                    for (ic = 0; ic < cin_g; ++ic) {
                        const int8_t *x_c = x_g + (size_t)ic * in_hw;
                        for (kh = 0; kh < p->kernel_h; ++kh) {
                            const int32_t ih = ih0 + kh * p->dilation_h;
                            const int inside_h = ih >= 0 && ih < p->in_h;
                            for (kw = 0; kw < p->kernel_w; ++kw) {
                                const int32_t iw = iw0 + kw * p->dilation_w;
                                patch[eq_dot_slot(i++, k_taps)] = (int16_t)(
                                    inside_h && iw >= 0 && iw < p->in_w
                                    ? (int32_t)x_c[ih * p->in_w + iw] - p->x_zp : 0);
                            }
                        }
                    }
                    for (oc = g * cout_g; oc < (g + 1) * cout_g; oc += 2) {
                        /* two output channels per pass share the patch loads */
                        const int32_t pair = oc + 1 < (g + 1) * cout_g;
                        int32_t acc[2], j;
                        acc[0] = bias != NULL ? bias[oc] : 0;
                        acc[1] = bias != NULL && pair ? bias[oc + 1] : 0;
                        if (pair) {
                            eq_dot2_s16_s8(patch, w + (size_t)oc * k_taps,
                                           w + (size_t)(oc + 1) * k_taps, k_taps, &acc[0], &acc[1]);
                        } else {
                            acc[0] = eq_dot_s16_s8(patch, w + (size_t)oc * k_taps, k_taps, acc[0]);
                        }
                        for (j = 0; j <= pair; ++j) {
                            const int32_t v = multiply_by_quantized_multiplier(acc[j], mult[oc + j],
                                                                               shift[oc + j]);
                            y_n[(size_t)(oc + j) * out_hw + oh * p->out_w + ow] =
                                eq_out_s8(v, p->y_zp, p->act_min, p->act_max);
                        }
                    }
                }
            }
        }
    }
}

eq_status eq_conv2d_s8(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, n, g, oc, oh, ow, ic, kh, kw, c;
    eq_status st;
    if (p == NULL || x == NULL || w == NULL || mult == NULL || shift == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    for (c = 0; c < p->out_c; ++c) {
        if (!eq_shift_ok(shift[c])) {
            return EQ_ERR_ARG;
        }
    }
    if (scratch != NULL) {
        conv_im2col(p, cin_g, cout_g, x, w, bias, mult, shift, eq_align4_s16(scratch), y);
        return EQ_OK;
    }
    {   /* direct path: no scratch, the loops of the semantics as written */
        const int32_t in_hw = p->in_h * p->in_w;
        const int32_t out_hw = p->out_h * p->out_w;
        const int32_t w_per_oc = cin_g * p->kernel_h * p->kernel_w;
        for (n = 0; n < p->batch; ++n) {
            const int8_t *x_n = x + (size_t)n * p->in_c * in_hw;
            int8_t *y_n = y + (size_t)n * p->out_c * out_hw;
            for (g = 0; g < p->groups; ++g) {
                const int8_t *x_g = x_n + (size_t)g * cin_g * in_hw;
                for (oc = g * cout_g; oc < (g + 1) * cout_g; ++oc) {
                    const int8_t *w_oc = w + (size_t)oc * w_per_oc;
                    const int32_t b = bias != NULL ? bias[oc] : 0;
                    int8_t *y_oc = y_n + (size_t)oc * out_hw;
                    for (oh = 0; oh < p->out_h; ++oh) {
                        const int32_t ih0 = oh * p->stride_h - p->pad_top;
                        for (ow = 0; ow < p->out_w; ++ow) {
                            const int32_t iw0 = ow * p->stride_w - p->pad_left;
                            int32_t acc = b;
                            for (ic = 0; ic < cin_g; ++ic) {
                                const int8_t *x_c = x_g + (size_t)ic * in_hw;
                                const int8_t *w_c = w_oc + (size_t)ic * p->kernel_h * p->kernel_w;
                                for (kh = 0; kh < p->kernel_h; ++kh) {
                                    const int32_t ih = ih0 + kh * p->dilation_h;
                                    if (ih < 0 || ih >= p->in_h) {
                                        continue;  /* padding row: contributes 0 */
                                    }
                                    for (kw = 0; kw < p->kernel_w; ++kw) {
                                        const int32_t iw = iw0 + kw * p->dilation_w;
                                        if (iw < 0 || iw >= p->in_w) {
                                            continue;
                                        }
                                        acc += ((int32_t)x_c[ih * p->in_w + iw] - p->x_zp) *
                                               (int32_t)w_c[kh * p->kernel_w + kw];
                                    }
                                }
                            }
                            acc = multiply_by_quantized_multiplier(acc, mult[oc], shift[oc]);
                            y_oc[oh * p->out_w + ow] =
                                eq_out_s8(acc, p->y_zp, p->act_min, p->act_max);
                        }
                    }
                }
            }
        }
    }
    return EQ_OK;
}
