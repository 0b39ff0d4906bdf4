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
 * one dot product per output channel of the group against its packed row. */
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
                    for (oc = g * cout_g; oc < (g + 1) * cout_g; ++oc) {
                        int32_t acc = bias != NULL ? bias[oc] : 0;
                        acc = eq_dot_s16_s4(patch, w + (size_t)oc * row, k_taps, acc);
                        acc = multiply_by_quantized_multiplier(acc, mult[oc], shift[oc]);
                        y_n[(size_t)oc * out_hw + oh * p->out_w + ow] =
                            eq_out_s8(acc, p->y_zp, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* Pointwise (1x1, stride 1, no padding) without scratch: pixel q of input channel ic is
 * x[ic * H*W + q], so there are no taps to bound. A 2x2 block per pass: two output
 * channels (oc0, oc1) and two pixels (qa, qb), so each input load serves two channels and
 * each unpacked weight byte (two input channels) two pixels. A missing second channel or
 * pixel repeats the first (computed twice, stored once), so nothing outside the buffers is
 * read. acc[] is (oc0 qa, oc0 qb, oc1 qa, oc1 qb). */
static void pointwise_block(int32_t cin_g, int32_t hw, int32_t zp, const int8_t *xa,
                            const int8_t *xb, const uint8_t *w0, const uint8_t *w1,
                            int32_t acc[4])
{
    int32_t ic;
    for (ic = 0; ic + 1 < cin_g; ic += 2, xa += 2 * hw, xb += 2 * hw) {
        const uint32_t u0 = w0[ic >> 1], u1 = w1[ic >> 1];
        const int32_t v00 = eq_s4_value(u0), v01 = eq_s4_value(u0 >> 4);
        const int32_t v10 = eq_s4_value(u1), v11 = eq_s4_value(u1 >> 4);
        const int32_t a0 = (int32_t)xa[0] - zp, a1 = (int32_t)xa[hw] - zp;
        const int32_t b0 = (int32_t)xb[0] - zp, b1 = (int32_t)xb[hw] - zp;
        acc[0] += a0 * v00 + a1 * v01;
        acc[1] += b0 * v00 + b1 * v01;
        acc[2] += a0 * v10 + a1 * v11;
        acc[3] += b0 * v10 + b1 * v11;
    }
    if (ic < cin_g) {  /* odd cin_g: each row's last value, a low nibble */
        const int32_t v0 = eq_s4_value(w0[ic >> 1]), v1 = eq_s4_value(w1[ic >> 1]);
        const int32_t a0 = (int32_t)xa[0] - zp, b0 = (int32_t)xb[0] - zp;
        acc[0] += a0 * v0;
        acc[1] += b0 * v0;
        acc[2] += a0 * v1;
        acc[3] += b0 * v1;
    }
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
                for (q = 0; q < hw; q += 2) {
                    const int32_t two = q + 1 < hw;
                    int32_t acc[4];
                    acc[0] = b0;
                    acc[1] = b0;
                    acc[2] = b1;
                    acc[3] = b1;
                    pointwise_block(cin_g, hw, p->x_zp, x_g + q, x_g + q + two, w0, w1, acc);
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
