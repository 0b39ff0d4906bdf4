/* Training: input gradients of QConv, QGemm and QAvgPool (edgeq/training/rules/conv.py,
 * rules/pool.py). Exact int32 sums of prescaled mantissas; the plan proves each fits. The
 * sums are order-independent (exact integers), so the loops scatter from each output. */
#include "eq_internal.h"
#include "eq_train.h"

size_t eq_train_conv2d_input_grad_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

size_t eq_train_fc_input_grad_scratch_size(const eq_fc_params *p)
{
    (void)p;
    return 0;
}

size_t eq_train_avgpool_input_grad_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_train_conv2d_input_grad(const eq_conv2d_params *p, const int16_t *m, const int8_t *w,
                                     const int32_t *gmult, const int32_t *gshift, int32_t *acc)
{
    int32_t n, g, col, oh, ow, kh, kw, cil, cig, cog, co;
    size_t i, x_size;
    if (p == NULL || m == NULL || w == NULL || gmult == NULL || gshift == NULL || acc == NULL ||
        p->batch < 1 || p->groups < 1 || p->stride_h < 1 || p->stride_w < 1 ||
        p->dilation_h < 1 || p->dilation_w < 1) {
        return EQ_ERR_ARG;
    }
    if (!eq_exact_quotient(p->in_c, p->groups, &cig) || !eq_exact_quotient(p->out_c, p->groups, &cog) ||
        !eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top, p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left, p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    x_size = (size_t)p->batch * p->in_c * p->in_h * p->in_w;
    for (i = 0; i < x_size; ++i) {
        acc[i] = 0;
    }
    for (n = 0; n < p->batch; ++n) {
        for (g = 0; g < p->groups; ++g) {
            for (col = 0; col < cog; ++col) {
                co = g * cog + col;
                for (oh = 0; oh < p->out_h; ++oh) {
                    for (ow = 0; ow < p->out_w; ++ow) {
                        const int32_t ms = multiply_by_quantized_multiplier(
                            m[(((size_t)n * p->out_c + co) * p->out_h + oh) * p->out_w + ow], gmult[co], gshift[co]);
                        if (ms == 0) {
                            continue;
                        }
                        for (kh = 0; kh < p->kernel_h; ++kh) {
                            const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                            if (ih < 0 || ih >= p->in_h) {
                                continue;
                            }
                            for (kw = 0; kw < p->kernel_w; ++kw) {
                                const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                                if (iw < 0 || iw >= p->in_w) {
                                    continue;
                                }
                                for (cil = 0; cil < cig; ++cil) {
                                    const int8_t wv = w[(((size_t)co * cig + cil) * p->kernel_h + kh) * p->kernel_w + kw];
                                    acc[(((size_t)n * p->in_c + g * cig + cil) * p->in_h + ih) * p->in_w + iw] += ms * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return EQ_OK;
}

eq_status eq_train_fc_input_grad(const eq_fc_params *p, const int16_t *m, const int8_t *w,
                                 const int32_t *gmult, const int32_t *gshift, int32_t *acc)
{
    int32_t n, c, k;
    if (p == NULL || m == NULL || w == NULL || gmult == NULL || gshift == NULL || acc == NULL ||
        p->batch < 1 || p->in_features < 1 || p->out_features < 1) {
        return EQ_ERR_ARG;
    }
    for (n = 0; n < p->batch; ++n) {
        int32_t *row = acc + (size_t)n * p->in_features;
        for (k = 0; k < p->in_features; ++k) {
            row[k] = 0;
        }
        for (c = 0; c < p->out_features; ++c) {
            const int32_t ms = multiply_by_quantized_multiplier(m[(size_t)n * p->out_features + c], gmult[c], gshift[c]);
            const int8_t *wc = w + (size_t)c * p->in_features;
            for (k = 0; k < p->in_features; ++k) {
                row[k] += ms * wc[k];
            }
        }
    }
    return EQ_OK;
}

/* Taps of window (oh, ow) that fall inside the input. */
static int32_t window_taps(const eq_pool_params *p, int32_t oh, int32_t ow)
{
    int32_t kh, kw, count = 0;
    for (kh = 0; kh < p->kernel_h; ++kh) {
        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
        for (kw = 0; kw < p->kernel_w; ++kw) {
            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
            count += (ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w) ? 1 : 0;
        }
    }
    return count;
}

eq_status eq_train_avgpool_input_grad(const eq_pool_params *p, const int16_t *m, const int32_t *pmult,
                                      const int32_t *pshift, int32_t *acc)
{
    int32_t n, c, oh, ow, kh, kw;
    size_t i, x_size;
    if (p == NULL || m == NULL || pmult == NULL || pshift == NULL || acc == NULL || p->batch < 1 ||
        p->channels < 1 || p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1) {
        return EQ_ERR_ARG;
    }
    if (!eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top, p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left, p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            if (window_taps(p, oh, ow) == 0) {
                return EQ_ERR_SHAPE;  /* a window entirely in the padding, as in the forward */
            }
        }
    }
    x_size = (size_t)p->batch * p->channels * p->in_h * p->in_w;
    for (i = 0; i < x_size; ++i) {
        acc[i] = 0;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int32_t count = window_taps(p, oh, ow);
            if (p->count_include_pad) {
                count = p->kernel_h * p->kernel_w;
            }
            for (n = 0; n < p->batch; ++n) {
                for (c = 0; c < p->channels; ++c) {
                    const size_t plane = (size_t)n * p->channels + c;
                    const int32_t share = multiply_by_quantized_multiplier(
                        m[(plane * p->out_h + oh) * p->out_w + ow], pmult[count], pshift[count]);
                    for (kh = 0; kh < p->kernel_h; ++kh) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (kw = 0; kw < p->kernel_w; ++kw) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                            if (iw >= 0 && iw < p->in_w) {
                                acc[(plane * p->in_h + ih) * p->in_w + iw] += share;
                            }
                        }
                    }
                }
            }
        }
    }
    return EQ_OK;
}
