/* QConv with int4 weights packed two per byte (eq_kernels.h, eq_s4.h): the same op as
 * eq_conv2d_s8 (groups, depthwise, pointwise, stride, dilation, asymmetric pads, batch)
 * and the same bytes out, with half the weight flash.
 *
 * Each output channel's K = in_c/groups * kernel_h * kernel_w weights form one packed row
 * of (K + 1) >> 1 bytes, in [in_c/groups, kH, kW] order, so tap t of a channel is value t
 * of its row. The int32 accumulator cannot overflow: |w| <= 8 < 127, so the s8 bound the
 * compiler proves (K * 255 * qmax + |bias| < 2^31, qmax = 7 here) covers it. */
#include "eq_s4.h"

/* The same int16 patch as eq_conv2d_s8 (2 * K + 4 bytes); weights are read packed. Each
 * kernel file stands alone (no cross-file calls), so the formula is repeated here. */
size_t eq_conv2d_s4_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g;
    if (p == NULL || !eq_exact_quotient(p->in_c, p->groups, &cin_g)) {
        return 0;
    }
    return (size_t)cin_g * (size_t)p->kernel_h * (size_t)p->kernel_w * 2u + 4u;
}

/* im2col path: gather the patch once per output pixel and group (in s4 dot order), then
 * dot it with the packed rows of the group's output channels, two channels per pass. */
static void conv_im2col(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                        const int8_t *x, const uint8_t *w, const int32_t *bias,
                        const int32_t *mult, const int32_t *shift, int16_t *patch, int8_t *y)
{
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t k_taps = cin_g * p->kernel_h * p->kernel_w;
    const int32_t row = eq_s4_row_bytes(k_taps);
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
                    int32_t i = 0;
                    for (ic = 0; ic < cin_g; ++ic) {
                        const int8_t *x_c = x_g + (size_t)ic * in_hw;
                        for (kh = 0; kh < p->kernel_h; ++kh) {
                            const int32_t ih = ih0 + kh * p->dilation_h;
                            const int inside_h = ih >= 0 && ih < p->in_h;
                            for (kw = 0; kw < p->kernel_w; ++kw) {
                                const int32_t iw = iw0 + kw * p->dilation_w;
                                patch[eq_dot_slot_s4(i++, k_taps)] = (int16_t)(
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
                            eq_dot2_s16_s4(patch, w + (size_t)oc * row, w + (size_t)(oc + 1) * row,
                                           k_taps, &acc[0], &acc[1]);
                        } else {
                            acc[0] = eq_dot_s16_s4(patch, w + (size_t)oc * row, k_taps, acc[0]);
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

/* Pointwise (1x1, stride 1, no padding) without scratch: pixel q of input channel ic is
 * x[ic * H*W + q], so there are no taps to bound. A 2x2 block per pass: two output
 * channels and two pixels, so each input load serves two channels and each unpacked weight
 * byte (two input channels) two pixels. A missing second channel or pixel repeats the
 * first (computed twice, stored once), so nothing outside the buffers is read.
 * The zero point leaves the loop: sum (x - x_zp) w = sum x w - x_zp * sum w, with sum w of
 * each row computed once and subtracted after the loop. No int32 overflow: |x w| <= 128 * 8
 * per tap is below the 255 * 7 of the proven bound K * 255 * 7 + |bias| < 2^31, so every
 * partial bias + sum x w fits, |x_zp * sum w| <= 128 * 8 * K fits, and the difference is
 * the layer's true accumulator. s[] is (ch0 px0, ch0 px1, ch1 px0, ch1 px1). */
static void pointwise_block(int32_t cin_g, int32_t hw, const int8_t *xa, const int8_t *xb,
                            const uint8_t *w0, const uint8_t *w1, int32_t s[4])
{
    /* local sums: int8_t may alias s[], so summing into s[] would store every step */
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    const uint8_t *end0 = w0 + (cin_g >> 1);
    for (; w0 < end0; ++w0, ++w1, xa += 2 * hw, xb += 2 * hw) {
        const int32_t v00 = eq_s4_value(*w0), v10 = eq_s4_value(*w1);
        const int32_t a = xa[0], b = xb[0];
        const int32_t v01 = eq_s4_value((uint32_t)*w0 >> 4), v11 = eq_s4_value((uint32_t)*w1 >> 4);
        const int32_t c = xa[hw], d = xb[hw];
        s00 += a * v00 + c * v01;
        s01 += b * v00 + d * v01;
        s10 += a * v10 + c * v11;
        s11 += b * v10 + d * v11;
    }
    if (cin_g & 1) {  /* odd cin_g: each row's last value, a low nibble */
        const int32_t v0 = eq_s4_value(*w0), v1 = eq_s4_value(*w1);
        s00 += xa[0] * v0;
        s01 += xb[0] * v0;
        s10 += xa[0] * v1;
        s11 += xb[0] * v1;
    }
    s[0] = s00;
    s[1] = s01;
    s[2] = s10;
    s[3] = s11;
}

/* sum of a packed row's k values */
static int32_t row_sum(const uint8_t *w, int32_t k)
{
    int32_t i, sum = 0;
    for (i = 0; i < k; ++i) {
        sum += eq_s4_get(w, i);
    }
    return sum;
}

static void conv_pointwise(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                           const int8_t *x, const uint8_t *w, const int32_t *bias,
                           const int32_t *mult, const int32_t *shift, int8_t *y)
{
    const int32_t hw = p->in_h * p->in_w;
    const int32_t row = eq_s4_row_bytes(cin_g);
    int32_t n, g, oc, q, j;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_c * hw;
        int8_t *y_n = y + (size_t)n * p->out_c * hw;
        for (g = 0; g < p->groups; ++g) {
            const int8_t *x_g = x_n + (size_t)g * cin_g * hw;
            for (oc = g * cout_g; oc < (g + 1) * cout_g; oc += 2) {
                const int32_t pair = oc + 1 < (g + 1) * cout_g;
                const uint8_t *w0 = w + (size_t)oc * row;
                const uint8_t *w1 = pair ? w0 + row : w0;
                const int32_t b0 = bias != NULL ? bias[oc] : 0;
                const int32_t b1 = bias != NULL && pair ? bias[oc + 1] : 0;
                const int32_t zw0 = p->x_zp * row_sum(w0, cin_g);
                const int32_t zw1 = p->x_zp * row_sum(w1, cin_g);
                for (q = 0; q < hw; q += 2) {
                    const int32_t two = q + 1 < hw;
                    int32_t acc[4];
                    acc[0] = b0;
                    acc[1] = b0;
                    acc[2] = b1;
                    acc[3] = b1;
                    pointwise_block(cin_g, hw, x_g + q, x_g + q + two, w0, w1, acc);
                    acc[0] -= zw0;  /* after the sum: every partial sum stays bounded */
                    acc[1] -= zw0;
                    acc[2] -= zw1;
                    acc[3] -= zw1;
                    for (j = 0; j < 4; ++j) {
                        const int32_t c = oc + (j >> 1);
                        if ((j >> 1) <= pair && (j & 1) <= two) {
                            y_n[(size_t)c * hw + q + (j & 1)] = eq_out_s8(
                                multiply_by_quantized_multiplier(acc[j], mult[c], shift[c]),
                                p->y_zp, p->act_min, p->act_max);
                        }
                    }
                }
            }
        }
    }
}

/* [*first, *end): the taps of one kernel axis (size k, dilation d) that fall inside an
 * input of length `in` when the window starts at i0. The others read padding, whose
 * (x - x_zp) is 0, so skipping them is the semantics. Counted, not divided. */
static void taps_inside(int32_t i0, int32_t k, int32_t d, int32_t in, int32_t *first, int32_t *end)
{
    int32_t a = 0, b = k;
    for (; a < k && i0 + a * d < 0; ++a) {
    }
    for (; b > a && i0 + (b - 1) * d >= in; --b) {
    }
    *first = a;
    *end = b;
}

/* Direct path (no scratch), any shape: per output pixel the taps inside the input are
 * found once, so the tap loops do no bounds checks; weights are unpacked one tap at a
 * time (eq_s4_get). */
static void conv_direct(const eq_conv2d_params *p, int32_t cin_g, int32_t cout_g,
                        const int8_t *x, const uint8_t *w, const int32_t *bias,
                        const int32_t *mult, const int32_t *shift, int8_t *y)
{
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t taps = p->kernel_h * p->kernel_w;
    const int32_t row = eq_s4_row_bytes(cin_g * taps);
    int32_t n, g, oc, oh, ow, ic, kh, kw;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_c * in_hw;
        int8_t *y_n = y + (size_t)n * p->out_c * out_hw;
        for (g = 0; g < p->groups; ++g) {
            const int8_t *x_g = x_n + (size_t)g * cin_g * in_hw;
            for (oh = 0; oh < p->out_h; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh0, kh1;
                taps_inside(ih0, p->kernel_h, p->dilation_h, p->in_h, &kh0, &kh1);
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    int32_t kw0, kw1;
                    taps_inside(iw0, p->kernel_w, p->dilation_w, p->in_w, &kw0, &kw1);
                    for (oc = g * cout_g; oc < (g + 1) * cout_g; ++oc) {
                        const uint8_t *w_oc = w + (size_t)oc * row;
                        int32_t acc = bias != NULL ? bias[oc] : 0;
                        for (ic = 0; ic < cin_g; ++ic) {
                            const int8_t *x_c = x_g + (size_t)ic * in_hw;
                            for (kh = kh0; kh < kh1; ++kh) {
                                const int8_t *x_r = x_c + (ih0 + kh * p->dilation_h) * p->in_w + iw0;
                                const int32_t t = ic * taps + kh * p->kernel_w;
                                for (kw = kw0; kw < kw1; ++kw) {
                                    acc += ((int32_t)x_r[kw * p->dilation_w] - p->x_zp) *
                                           eq_s4_get(w_oc, t + kw);
                                }
                            }
                        }
                        acc = multiply_by_quantized_multiplier(acc, mult[oc], shift[oc]);
                        y_n[(size_t)oc * out_hw + oh * p->out_w + ow] =
                            eq_out_s8(acc, p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

eq_status eq_conv2d_s4(const eq_conv2d_params *p, const int8_t *x, const uint8_t *w,
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
    } else if (p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
               p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0 &&
               p->out_h == p->in_h && p->out_w == p->in_w) {
        conv_pointwise(p, cin_g, cout_g, x, w, bias, mult, shift, y);
    } else {
        conv_direct(p, cin_g, cout_g, x, w, bias, mult, shift, y);
    }
    return EQ_OK;
}
