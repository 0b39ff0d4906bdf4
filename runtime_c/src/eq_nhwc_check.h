/* Argument checks shared by the NHWC kernels (eq_kernels_nhwc.h): every variant of an op
 * accepts exactly the same calls, so the _c kernel can stand in for any of them. */
#ifndef EQ_NHWC_CHECK_H
#define EQ_NHWC_CHECK_H

#include "eq_kernels_nhwc.h"
#include "eq_pool_common.h"
#include "eq_nhwc_requant.h"

/* rq entries as pack_requant writes them: rs in [-1, 30]; a left shift in [0, 30]. */
static inline int eq_rq_ok(const eq_rq *rq, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        if (rq[i].rs < -1 || rq[i].rs > 30 || rq[i].mult < 0 ||
            (rq[i].rs == -1 && (rq[i].c_hi < 0 || rq[i].c_hi > 30))) {
            return 0;
        }
    }
    return 1;
}

/* eq_rq4 blocks as pack_requant4 writes them: mult >= 0, neg_r in [-31, 0], left in
 * [0, 30], never both shifts. */
static inline int eq_rq4_ok(const eq_rq4 *rq, int32_t blocks)
{
    int32_t b, i;
    for (b = 0; b < blocks; ++b) {
        for (i = 0; i < 4; ++i) {
            if (rq[b].mult[i] < 0 || rq[b].neg_r[i] < -31 || rq[b].neg_r[i] > 0 || rq[b].left[i] < 0 ||
                rq[b].left[i] > 30 || (rq[b].neg_r[i] != 0 && rq[b].left[i] != 0)) {
                return 0;
            }
        }
    }
    return 1;
}

/* 1 when no entry takes the shift >= 0 path (the kernels then compile it out). */
static inline int eq_rq_all_fast(const eq_rq *rq, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        if (rq[i].rs < 0) {
            return 0;
        }
    }
    return 1;
}

static inline eq_status eq_nhwc_conv_check(const eq_conv2d_params *p, const void *x, const void *w,
                                           const void *bias, const eq_rq *rq, const void *y,
                                           int32_t *cin_g, int32_t *cout_g)
{
    eq_status st;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, cin_g, cout_g);
    if (st != EQ_OK) {
        return st;
    }
    return eq_rq_ok(rq, p->out_c) ? EQ_OK : EQ_ERR_ARG;
}

static inline int eq_nhwc_is_pointwise(const eq_conv2d_params *p)
{
    return p->kernel_h == 1 && p->kernel_w == 1 && p->groups == 1 && p->pad_top == 0 &&
           p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0;
}

static inline int eq_nhwc_is_depthwise(const eq_conv2d_params *p)
{
    return p->groups == p->in_c;
}

/* The depthwise 3x3 special case: multiplier 1, no dilation, stride 1 or 2, pads <= 1. */
static inline int eq_nhwc_is_dw3x3(const eq_conv2d_params *p)
{
    return p->groups == p->in_c && p->out_c == p->in_c && p->kernel_h == 3 && p->kernel_w == 3 &&
           p->dilation_h == 1 && p->dilation_w == 1 && p->stride_h >= 1 && p->stride_h <= 2 &&
           p->stride_w >= 1 && p->stride_w <= 2 && p->pad_top <= 1 && p->pad_left <= 1 &&
           p->pad_bottom <= 1 && p->pad_right <= 1;
}

static inline eq_status eq_nhwc_fc_check(const eq_fc_params *p, const void *x, const void *w,
                                         const void *bias, const eq_rq *rq, const void *y)
{
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL ||
        p->batch < 1 || p->in_features < 1 || p->out_features < 1 || !eq_zp_ok(p->x_zp) ||
        !eq_zp_ok(p->y_zp) || !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    return eq_rq_ok(rq, p->out_features) ? EQ_OK : EQ_ERR_ARG;
}

static inline eq_status eq_nhwc_add_check(const eq_nhwc_add_params *p, const void *a, const void *b,
                                          const void *ta, const void *tb, const eq_rq *rq, const void *y)
{
    if (p == NULL || a == NULL || b == NULL || ta == NULL || tb == NULL || rq == NULL || y == NULL ||
        p->size < 1 || !eq_zp_ok(p->y_zp) || !eq_clamp_ok(p->act_min, p->act_max) || !eq_rq_ok(rq, 1)) {
        return EQ_ERR_ARG;
    }
    return EQ_OK;
}

/* Pool params (eq_pool_check) plus: no window entirely in the padding, kH * kW <= 65535. */
static inline eq_status eq_nhwc_pool_check(const eq_pool_params *p)
{
    int32_t o, t0, t1;
    eq_status st = eq_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    if (p->kernel_h > 255 || p->kernel_w > 255) {
        return EQ_ERR_ARG;
    }
    for (o = 0; o < p->out_h; ++o) {
        eq_tap_range(o * p->stride_h - p->pad_top, p->kernel_h, p->dilation_h, p->in_h, &t0, &t1);
        if (t0 == t1) {
            return EQ_ERR_SHAPE;
        }
    }
    for (o = 0; o < p->out_w; ++o) {
        eq_tap_range(o * p->stride_w - p->pad_left, p->kernel_w, p->dilation_w, p->in_w, &t0, &t1);
        if (t0 == t1) {
            return EQ_ERR_SHAPE;
        }
    }
    return EQ_OK;
}

/* The checks of the _mve depthwise kernels; fills the x_zp row (in_c rounded up to 8
 * bytes) at the aligned start of scratch. */
static inline eq_status eq_nhwc_dw_mve_setup(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                             const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y,
                                             int32_t *mult, int8_t **zp_row)
{
    int32_t cin_g, c;
    eq_status st;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL || scratch == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, &cin_g, mult);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_depthwise(p)) {
        return EQ_ERR_SHAPE;
    }
    if (!eq_rq4_ok(rq, ((p->out_c + 7) & ~7) >> 2) || ((uintptr_t)rq & 3u) != 0 || ((uintptr_t)bias & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    *zp_row = (int8_t *)eq_align4_s16(scratch);
    for (c = 0; c < ((p->in_c + 7) & ~7); ++c) {
        (*zp_row)[c] = (int8_t)p->x_zp;
    }
    return EQ_OK;
}

/* Output pixel coordinates walked in NHWC order without dividing. */
typedef struct {
    int32_t n, oh, ow;
} eq_px;

static inline void eq_px_next(eq_px *px, int32_t out_h, int32_t out_w)
{
    if (++px->ow == out_w) {
        px->ow = 0;
        if (++px->oh == out_h) {
            px->oh = 0;
            ++px->n;
        }
    }
}

#endif /* EQ_NHWC_CHECK_H */
