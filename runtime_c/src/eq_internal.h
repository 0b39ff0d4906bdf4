/* Helpers shared by the kernel sources (not part of the public API). */
#ifndef EQ_INTERNAL_H
#define EQ_INTERNAL_H

#include <stdint.h>

#include "eq_fixedpoint.h"
#include "eq_kernels.h"

/* q = a / b when b divides a exactly (a >= 0, b > 0), by shift-and-subtract long
 * division, so that no kernel needs a divide instruction. Returns 0 if not exact. */
static inline int eq_exact_quotient(int32_t a, int32_t b, int32_t *q)
{
    uint32_t rem = 0, quo = 0;
    int32_t bit;
    if (a < 0 || b <= 0) {
        return 0;
    }
    for (bit = 30; bit >= 0; --bit) {
        rem = (rem << 1) | (((uint32_t)a >> bit) & 1u);
        quo <<= 1;
        if (rem >= (uint32_t)b) {
            rem -= (uint32_t)b;
            quo |= 1u;
        }
    }
    *q = (int32_t)quo;
    return rem == 0;
}

/* Is `out` the floor-mode output length of a window (kernel k, dilation d, stride s) over
 * `in` padded by pb + pe? Equivalent to out == (in + pb + pe - span) / s + 1, without
 * dividing: (out-1)*s <= in + pb + pe - span < out*s. */
static inline int eq_window_out_ok(int32_t in, int32_t out, int32_t k, int32_t s,
                                   int32_t pb, int32_t pe, int32_t d)
{
    int64_t r;
    if (in < 1 || out < 1 || k < 1 || s < 1 || d < 1 || pb < 0 || pe < 0) {
        return 0;
    }
    r = (int64_t)in + pb + pe - ((int64_t)d * (k - 1) + 1);
    return r >= 0 && (int64_t)(out - 1) * s <= r && r < (int64_t)out * s;
}

static inline int eq_zp_ok(int32_t zp)
{
    return zp >= -128 && zp <= 127;
}

static inline int eq_clamp_ok(int32_t lo, int32_t hi)
{
    return lo >= -128 && lo <= hi && hi <= 127;
}

static inline int eq_shift_ok(int32_t shift)
{
    return shift >= -31 && shift <= 30;
}

/* clamp(zp + v, lo, hi) without int32 overflow for any v: once |v| > 1024 the result is
 * saturated anyway (|zp|, |lo|, |hi| <= 128), so v is pre-clamped to [-1024, 1024]. */
static inline int8_t eq_out_s8(int32_t v, int32_t zp, int32_t lo, int32_t hi)
{
    return (int8_t)clamp(clamp(v, -1024, 1024) + zp, lo, hi);
}

/* The params of a conv2d call (s8 and s4 kernels): groups divide in_c and out_c (the
 * quotients are returned), zero points, clamp and the output size of each window. */
static inline eq_status eq_conv2d_check(const eq_conv2d_params *p, int32_t *cin_g,
                                        int32_t *cout_g)
{
    if (p->batch < 1 || p->in_c < 1 || p->out_c < 1 || p->groups < 1) {
        return EQ_ERR_ARG;
    }
    if (!eq_zp_ok(p->x_zp) || !eq_zp_ok(p->y_zp) || !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    if (!eq_exact_quotient(p->in_c, p->groups, cin_g) ||
        !eq_exact_quotient(p->out_c, p->groups, cout_g)) {
        return EQ_ERR_SHAPE;
    }
    if (!eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top,
                          p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left,
                          p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    return EQ_OK;
}

/* ---- the dot products of the im2col fast paths (conv2d, fully_connected) --------------
 * acc + sum_{i<k} a[i] * w[i]: a holds (x - x_zp) as int16 in [-255, 255] in "dot order"
 * (below), w int8 weights in their natural order. Integer addition is exact in any order
 * and every partial sum is bounded by the layer's proven |acc| bound, so the DSP variant
 * gives the same int32 as the plain loop.
 *
 * Dot order: the DSP loop multiplies (a0, a2) with the sign-extended weight bytes
 * (w0, w2) and (a1, a3) with (w1, w3) (that is what SXTB16 produces from 4 packed
 * weights), so the patch stores each full block of 4 as a0, a2, a1, a3; the last k % 4
 * values stay in order. The portable build uses the natural order. eq_dot_slot(i, k) is
 * where value i of a k-long vector goes. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1
#include <arm_acle.h>

static inline int32_t eq_dot_slot(int32_t i, int32_t k)
{
    /* within a full block: 0->0, 1->2, 2->1, 3->3 (swap when bits 0 and 1 differ) */
    return i < (k & ~3) ? (i ^ ((((i >> 1) ^ i) & 1) * 3)) : i;
}

static inline uint32_t eq_load_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);  /* unaligned-safe word load (weights are int8) */
    return v;
}

static inline int32_t eq_dot_s16_s8(const int16_t *a, const int8_t *w, int32_t k, int32_t acc)
{
    for (; k >= 4; k -= 4, a += 4, w += 4) {
        const uint32_t w4 = eq_load_u32(w);
        acc = __smlad((int16x2_t)eq_load_u32(a), __sxtb16((int8x4_t)w4), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 2), __sxtb16((int8x4_t)((w4 >> 8) | (w4 << 24))), acc);
    }
    for (; k > 0; --k) {
        acc += (int32_t)*a++ * (int32_t)*w++;
    }
    return acc;
}

/* Two weight rows against the same activations: each activation word is loaded once. */
static inline void eq_dot2_s16_s8(const int16_t *a, const int8_t *w0, const int8_t *w1,
                                  int32_t k, int32_t *acc0, int32_t *acc1)
{
    int32_t s0 = *acc0, s1 = *acc1;
    for (; k >= 4; k -= 4, a += 4, w0 += 4, w1 += 4) {
        const int16x2_t a02 = (int16x2_t)eq_load_u32(a);
        const int16x2_t a13 = (int16x2_t)eq_load_u32(a + 2);
        const uint32_t u0 = eq_load_u32(w0), u1 = eq_load_u32(w1);
        s0 = __smlad(a02, __sxtb16((int8x4_t)u0), s0);
        s0 = __smlad(a13, __sxtb16((int8x4_t)((u0 >> 8) | (u0 << 24))), s0);
        s1 = __smlad(a02, __sxtb16((int8x4_t)u1), s1);
        s1 = __smlad(a13, __sxtb16((int8x4_t)((u1 >> 8) | (u1 << 24))), s1);
    }
    for (; k > 0; --k, ++a) {
        s0 += (int32_t)*a * (int32_t)*w0++;
        s1 += (int32_t)*a * (int32_t)*w1++;
    }
    *acc0 = s0;
    *acc1 = s1;
}
#else
static inline int32_t eq_dot_slot(int32_t i, int32_t k)
{
    (void)k;
    return i;
}

static inline int32_t eq_dot_s16_s8(const int16_t *a, const int8_t *w, int32_t k, int32_t acc)
{
    int32_t i;
    for (i = 0; i < k; ++i) {
        acc += (int32_t)a[i] * (int32_t)w[i];
    }
    return acc;
}

static inline void eq_dot2_s16_s8(const int16_t *a, const int8_t *w0, const int8_t *w1,
                                  int32_t k, int32_t *acc0, int32_t *acc1)
{
    *acc0 = eq_dot_s16_s8(a, w0, k, *acc0);
    *acc1 = eq_dot_s16_s8(a, w1, k, *acc1);
}
#endif

/* The scratch pointer rounded up to 4 bytes (scratch sizes include 4 bytes of slack). */
static inline int16_t *eq_align4_s16(void *scratch)
{
    return (int16_t *)(((uintptr_t)scratch + 3u) & ~(uintptr_t)3u);
}

#endif /* EQ_INTERNAL_H */
