/* QConv, int8, NCHW, general: groups (incl. depthwise with channel multiplier), stride,
 * dilation, asymmetric padding, batch. Semantics in eq_kernels.h / docs/semantics.md.
 *
 * Three paths, the same bytes: im2col (scratch given), pointwise (1x1, stride 1, no padding)
 * and direct. Each sums, per output value, the group's input channels and kernel taps; a
 * tap outside the input is skipped, which is the same as padding with x_zp (its
 * (x - x_zp) is 0). The accumulator is int32: the compiler proved
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

/* Output pixels q0 and q1 (= q0 when there is no second one) of channels oc0 and oc1 of a
 * pointwise conv: a 2x2 register block, so each input load serves two channels and each
 * weight load two pixels. Same sum as the direct path, in the same order. */
static void pointwise_block(const eq_conv2d_params *p, int32_t cin_g, int32_t hw,
                            const int8_t *x_g, const int8_t *w0, const int8_t *w1, int32_t b0,
                            int32_t b1, int32_t q0, int32_t q1, int32_t acc[4])
{
    const int8_t *xa = x_g + q0;
    const int8_t *xb = x_g + q1;
    int32_t a00 = b0, a01 = b0, a10 = b1, a11 = b1, ic;
    for (ic = 0; ic < cin_g; ++ic) {
        const int32_t va = (int32_t)*xa - p->x_zp;
        const int32_t vb = (int32_t)*xb - p->x_zp;
        const int32_t k0 = w0[ic];
        const int32_t k1 = w1[ic];
        a00 += va * k0;
        a01 += vb * k0;
        a10 += va * k1;
        a11 += vb * k1;
        xa += hw;
        xb += hw;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Direct path for a 1x1 kernel with stride 1 and no padding (pointwise), which needs no
 * scratch: output pixel q reads x[ic * H*W + q] for each input channel of its group, so
 * no bounds checks and no tap loops. Two output channels and two pixels per pass. */
static void conv_pointwise(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                           const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, int8_t *y)
{
    const int32_t hw = p->in_h * p->in_w;
    int32_t n, g, oc, q, j;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_c * hw;
        int8_t *y_n = y + (size_t)n * p->out_c * hw;
        for (g = 0; g < p->groups; ++g) {
            const int8_t *x_g = x_n + (size_t)g * cin_g * hw;
            for (oc = g * cout_g; oc < (g + 1) * cout_g; oc += 2) {
                const int32_t pair = oc + 1 < (g + 1) * cout_g;
                const int8_t *w0 = w + (size_t)oc * cin_g;
                const int8_t *w1 = pair ? w0 + cin_g : w0;
                const int32_t b0 = bias != NULL ? bias[oc] : 0;
                const int32_t b1 = bias != NULL && pair ? bias[oc + 1] : 0;
                for (q = 0; q < hw; q += 2) {
                    const int32_t two = q + 1 < hw;  /* an odd H*W ends with one pixel */
                    int32_t acc[4];
                    pointwise_block(p, cin_g, hw, x_g, w0, w1, b0, b1, q, two ? q + 1 : q, acc);
                    for (j = 0; j < 4; ++j) {
                        const int32_t c = oc + (j >> 1);
                        if ((j >> 1) > pair || (j & 1) > two) {
                            continue;
                        }
                        y_n[(size_t)c * hw + q + (j & 1)] = eq_out_s8(
                            multiply_by_quantized_multiplier(acc[j], mult[c], shift[c]),
                            p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* The taps [*lo, *hi) of one kernel axis that land inside the input, for an output
 * position whose first tap is at i0 (taps skipped are padding: (x - x_zp) = 0). A loop,
 * not a division: the runtime divides nowhere. */
static void inside_taps(int32_t i0, int32_t k, int32_t dilation, int32_t in, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = k;
    while (a < k && i0 + a * dilation < 0) {
        ++a;
    }
    while (b > a && i0 + (b - 1) * dilation >= in) {
        --b;
    }
    *lo = a;
    *hi = b;
}

/* Direct path (no scratch), any shape: per output pixel the taps inside the input are found
 * once, so the tap loops carry no bounds checks; two output channels per pass share each
 * input load. The sum is the semantics' sum over the same taps. */
static void conv_direct(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                        const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *mult, const int32_t *shift, int8_t *y)
{
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t k_hw = p->kernel_h * p->kernel_w;
    int32_t n, g, oh, ow, oc, ic, kh, kw, j;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_c * in_hw;
        int8_t *y_n = y + (size_t)n * p->out_c * out_hw;
        for (g = 0; g < p->groups; ++g) {
            const int8_t *x_g = x_n + (size_t)g * cin_g * in_hw;
            for (oh = 0; oh < p->out_h; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh_lo, kh_hi;
                inside_taps(ih0, p->kernel_h, p->dilation_h, p->in_h, &kh_lo, &kh_hi);
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    int32_t kw_lo, kw_hi;
                    int full3;
                    inside_taps(iw0, p->kernel_w, p->dilation_w, p->in_w, &kw_lo, &kw_hi);
                    /* a full row of a 3-wide, undilated kernel: the common case, unrolled */
                    full3 = p->kernel_w == 3 && p->dilation_w == 1 && kw_lo == 0 && kw_hi == 3;
                    for (oc = g * cout_g; oc < (g + 1) * cout_g; oc += 2) {
                        const int32_t pair = oc + 1 < (g + 1) * cout_g;
                        const int8_t *w0 = w + (size_t)oc * cin_g * k_hw;
                        const int8_t *w1 = pair ? w0 + (size_t)cin_g * k_hw : w0;
                        int32_t acc[2];
                        acc[0] = bias != NULL ? bias[oc] : 0;
                        acc[1] = bias != NULL && pair ? bias[oc + 1] : 0;
                        for (ic = 0; ic < cin_g; ++ic) {
                            const int8_t *x_c = x_g + (size_t)ic * in_hw;
                            for (kh = kh_lo; kh < kh_hi; ++kh) {
                                const int8_t *x_r = x_c + (ih0 + kh * p->dilation_h) * p->in_w + iw0;
                                const int32_t t = ic * k_hw + kh * p->kernel_w;
                                if (full3) {
                                    const int32_t v0 = (int32_t)x_r[0] - p->x_zp;
                                    const int32_t v1 = (int32_t)x_r[1] - p->x_zp;
                                    const int32_t v2 = (int32_t)x_r[2] - p->x_zp;
                                    acc[0] += v0 * w0[t] + v1 * w0[t + 1] + v2 * w0[t + 2];
                                    if (pair) {
                                        acc[1] += v0 * w1[t] + v1 * w1[t + 1] + v2 * w1[t + 2];
                                    }
                                } else if (pair) {
                                    for (kw = kw_lo; kw < kw_hi; ++kw) {
                                        const int32_t v = (int32_t)x_r[kw * p->dilation_w] - p->x_zp;
                                        acc[0] += v * (int32_t)w0[t + kw];
                                        acc[1] += v * (int32_t)w1[t + kw];
                                    }
                                } else {  /* one channel left (always, for depthwise) */
                                    for (kw = kw_lo; kw < kw_hi; ++kw) {
                                        acc[0] += ((int32_t)x_r[kw * p->dilation_w] - p->x_zp) *
                                                  (int32_t)w0[t + kw];
                                    }
                                }
                            }
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
    int32_t cin_g, cout_g, c;
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
    if (p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0) {
        conv_pointwise(p, cin_g, cout_g, x, w, bias, mult, shift, y);
        return EQ_OK;
    }
    conv_direct(p, cin_g, cout_g, x, w, bias, mult, shift, y);
    return EQ_OK;
}
