/* Training: the backward of the ops that route values rather than compute them: QMaxPool
 * (the winning tap), QTranspose / QPad / QConcat (a strided gather of the output gradient)
 * and a broadcast QAdd input (the sum over the broadcast axes). edgeq/training/rules/pool.py,
 * shape.py and add.py; all exact: the rule rounds nothing. */
#include "eq_internal.h"
#include "eq_train.h"

size_t eq_train_maxpool_input_grad_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_train_maxpool_input_grad(const eq_pool_params *p, const int8_t *x, const int16_t *m, int32_t *acc)
{
    int32_t n, c, oh, ow, kh, kw;
    size_t i, x_size;
    if (p == NULL || x == NULL || m == NULL || acc == NULL || p->batch < 1 || p->channels < 1 ||
        p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1) {
        return EQ_ERR_ARG;
    }
    if (!eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top, p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left, p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    x_size = (size_t)p->batch * p->channels * p->in_h * p->in_w;
    for (i = 0; i < x_size; ++i) {
        acc[i] = 0;
    }
    for (n = 0; n < p->batch; ++n) {
        for (c = 0; c < p->channels; ++c) {
            const size_t plane = (size_t)n * p->channels + c;
            const int8_t *xp = x + plane * p->in_h * p->in_w;
            for (oh = 0; oh < p->out_h; ++oh) {
                for (ow = 0; ow < p->out_w; ++ow) {
                    int32_t best = 128;   /* no tap yet: any int8 beats it (strictly greater below) */
                    size_t winner = 0;
                    for (kh = 0; kh < p->kernel_h; ++kh) {
                        const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (kw = 0; kw < p->kernel_w; ++kw) {
                            const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                            const size_t at = (size_t)ih * p->in_w + iw;
                            if (iw < 0 || iw >= p->in_w) {
                                continue;
                            }
                            if (best == 128 || xp[at] > best) {   /* the first among equals keeps the win */
                                best = xp[at];
                                winner = at;
                            }
                        }
                    }
                    if (best == 128) {
                        return EQ_ERR_SHAPE;  /* a window entirely in the padding, as in the forward */
                    }
                    acc[plane * p->in_h * p->in_w + winner] += m[(plane * p->out_h + oh) * p->out_w + ow];
                }
            }
        }
    }
    return EQ_OK;
}

/* Advance a row-major multi-index over shape; returns the source offset's change. */
static int32_t next_index(int32_t *index, int32_t rank, const int32_t *shape, const int32_t *stride)
{
    int32_t d, delta = 0;
    for (d = rank - 1; d >= 0; --d) {
        index[d] += 1;
        delta += stride[d];
        if (index[d] < shape[d]) {
            return delta;
        }
        delta -= stride[d] * shape[d];
        index[d] = 0;
    }
    return delta;
}

static int shape_ok(int32_t rank, const int32_t *shape, size_t *count)
{
    int32_t d;
    *count = 1;
    if (shape == NULL || rank < 1 || rank > EQ_TRAIN_MAX_RANK) {
        return 0;
    }
    for (d = 0; d < rank; ++d) {
        if (shape[d] < 1) {
            return 0;
        }
        *count *= (size_t)shape[d];
    }
    return 1;
}

eq_status eq_train_gather_grad(const int16_t *m, int32_t rank, const int32_t *shape, const int32_t *stride,
                               int32_t offset, int16_t *out)
{
    int32_t index[EQ_TRAIN_MAX_RANK] = {0};
    int32_t src = offset;
    size_t i, count;
    if (m == NULL || stride == NULL || out == NULL || offset < 0 || !shape_ok(rank, shape, &count)) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        out[i] = m[src];
        src += next_index(index, rank, shape, stride);
    }
    return EQ_OK;
}

eq_status eq_train_unbroadcast(const int16_t *m, int32_t rank, const int32_t *out_shape, const int32_t *in_stride,
                               int32_t in_count, int32_t *acc)
{
    int32_t index[EQ_TRAIN_MAX_RANK] = {0};
    int32_t dst = 0, j;
    size_t i, count;
    if (m == NULL || in_stride == NULL || acc == NULL || in_count < 1 || !shape_ok(rank, out_shape, &count)) {
        return EQ_ERR_ARG;
    }
    for (j = 0; j < in_count; ++j) {
        acc[j] = 0;
    }
    for (i = 0; i < count; ++i) {
        acc[dst] += m[i];
        dst += next_index(index, rank, out_shape, in_stride);
    }
    return EQ_OK;
}
