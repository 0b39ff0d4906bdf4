/* Building blocks of the _mve NHWC kernels (Cortex-M55, Helium), shared by the kernel files
 * and the shape-specialised bodies. GCC on Arm with MVE (arm_mve.h) only.
 *
 * Requantization of 4 lanes (eq_rq4, packing.pack_requant4), exactly MBQM:
 *   h = VQRDMULH(acc << left, mult)          SRDHM: floor((a m + 2^30) / 2^31), saturating
 *   h = h + ((h & neg_r) >> 31)              -1 where h < 0 and R = -neg_r > 0
 *   y = VRSHL(h, neg_r)                       floor((h + 2^(R-1)) / 2^R), no overflow
 * which is RDBP(h, R) = floor((h + 2^(R-1) - [h < 0]) / 2^R): VRSHL rounds ties up, the
 * -1 turns that into "away from zero" for negative h (neg_r's sign bit is the mask). h is
 * never INT32_MIN (mult >= 0), so h - 1 cannot wrap.
 */
#ifndef EQ_NHWC_MVE_H
#define EQ_NHWC_MVE_H

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

#include <arm_mve.h>
#include <stdint.h>

#include "eq_kernels_nhwc.h"

#define EQ_INLINE static inline __attribute__((always_inline))

/* One eq_rq4 block in registers, loaded once per block of 4 output channels. */
typedef struct {
    int32x4_t mult, neg_r, left;
} eq_mve_rqv;

EQ_INLINE eq_mve_rqv eq_mve_rq_load(const eq_rq4 *q)
{
    eq_mve_rqv v;
    v.mult = vldrwq_s32(q->mult);
    v.neg_r = vldrwq_s32(q->neg_r);
    v.left = vldrwq_s32(q->left);
    return v;
}

/* MBQM of 4 lanes; `left`: some lane of the layer has shift > 0 (else the VSHL is left out). */
EQ_INLINE int32x4_t eq_mve_rq(int32x4_t acc, const eq_mve_rqv *q, int left)
{
    int32x4_t h;
    if (left) {
        acc = vshlq_s32(acc, q->left);
    }
    h = vqrdmulhq_s32(acc, q->mult);
    h = vaddq_s32(h, vshrq_n_s32(vandq_s32(h, q->neg_r), 31));
    return vrshlq_s32(h, q->neg_r);
}

/* clamp(y_zp + v, lo, hi) per lane. */
EQ_INLINE int32x4_t eq_mve_out(int32x4_t v, int32_t zp, int32x4_t lo, int32x4_t hi)
{
    return vminq_s32(vmaxq_s32(vaddq_n_s32(v, zp), lo), hi);
}

/* Four scalars into one vector: two VMOVs of two lanes each. */
EQ_INLINE int32x4_t eq_mve_vec4(int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
    int32x4_t v;
    __asm__("vmov   %q0[2], %q0[0], %1, %2\n\t"
            "vmov   %q0[3], %q0[1], %3, %4"
            : "=&w"(v) : "r"(a0), "r"(a2), "r"(a1), "r"(a3));
    return v;
}

/* The dot products of one row x with the 4 channels of a packed block w (per 16 columns,
 * 16 bytes of each channel; zero padded to K16) over `full` whole 16-column blocks and, when
 * tail != 0, one last block whose x is loaded under the tail predicate (x is never read past
 * its row; the zero-padded weights make the sum right): VMLADAVA, 16 MACs per instruction. */
EQ_INLINE int32x4_t eq_mve_dot4(const int8_t *x, const int8_t *w, int32_t full, int tail, mve_pred16_t p)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, i;
    for (i = full; i > 0; --i, x += 16, w += 64) {
        const int8x16_t xv = vldrbq_s8(x);
        a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w));
        a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w + 16));
        a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w + 32));
        a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w + 48));
    }
    if (tail) {
        const int8x16_t xv = vldrbq_z_s8(x, p);
        a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w));
        a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w + 16));
        a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w + 32));
        a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w + 48));
    }
    return eq_mve_vec4(a0, a1, a2, a3);
}

/* ---- depthwise: 16 channels per int8 vector ---------------------------------------------
 * VMULLB/VMULLT multiply the even/odd int8 lanes into int16 products (|p| <= 128 * 127, so
 * two taps' products still fit int16), and VMOVLB/VMOVLT widen the even/odd int16 lanes into
 * int32: a 16-channel block's sums live in four int32 vectors holding the channels
 * (0,4,8,12), (2,6,10,14), (1,5,9,13), (3,7,11,15): packing.DW_MVE_LANES, the order of
 * the block's bias and eq_rq4 entries. */
typedef struct {
    int32x4_t a, b, c, d;
} eq_mve_acc16;

EQ_INLINE void eq_mve_acc16_add(eq_mve_acc16 *s, int16x8_t even, int16x8_t odd)
{
    s->a = vaddq_s32(s->a, vmovlbq_s16(even));
    s->b = vaddq_s32(s->b, vmovltq_s16(even));
    s->c = vaddq_s32(s->c, vmovlbq_s16(odd));
    s->d = vaddq_s32(s->d, vmovltq_s16(odd));
}

/* Two taps (x0 . w0 + x1 . w1 per channel) into the sums: 4 VMULL, 2 int16 adds, 4 widens. */
EQ_INLINE void eq_mve_dw_pair(eq_mve_acc16 *s, int8x16_t x0, int8x16_t w0, int8x16_t x1, int8x16_t w1)
{
    const int16x8_t e = vaddq_s16(vmullbq_int_s8(x0, w0), vmullbq_int_s8(x1, w1));
    const int16x8_t o = vaddq_s16(vmulltq_int_s8(x0, w0), vmulltq_int_s8(x1, w1));
    eq_mve_acc16_add(s, e, o);
}

EQ_INLINE void eq_mve_dw_one(eq_mve_acc16 *s, int8x16_t x0, int8x16_t w0)
{
    eq_mve_acc16_add(s, vmullbq_int_s8(x0, w0), vmulltq_int_s8(x0, w0));
}

EQ_INLINE eq_mve_acc16 eq_mve_acc16_load(const int32_t *bias16)
{
    eq_mve_acc16 s;
    s.a = vldrwq_s32(bias16);
    s.b = vldrwq_s32(bias16 + 4);
    s.c = vldrwq_s32(bias16 + 8);
    s.d = vldrwq_s32(bias16 + 12);
    return s;
}

/* Requantize a 16-channel block (rq4: its 4 eq_rq4 in lane order), add y_zp, narrow back to
 * channel order with saturation (VQMOVNB/T: int32 -> int16 -> int8), clamp, store n <= 16. */
EQ_INLINE void eq_mve_dw_store16(const eq_mve_acc16 *s, const eq_rq4 *rq4, int left, int32_t zp, int8x16_t lo,
                                 int8x16_t hi, int narrow, int8_t *y, mve_pred16_t pred, int full)
{
    eq_mve_rqv q;
    int32x4_t a, b, c, d;
    int16x8_t e = vdupq_n_s16(0), o = vdupq_n_s16(0);
    int8x16_t r = vdupq_n_s8(0);
    q = eq_mve_rq_load(&rq4[0]);
    a = vaddq_n_s32(eq_mve_rq(s->a, &q, left), zp);
    q = eq_mve_rq_load(&rq4[1]);
    b = vaddq_n_s32(eq_mve_rq(s->b, &q, left), zp);
    q = eq_mve_rq_load(&rq4[2]);
    c = vaddq_n_s32(eq_mve_rq(s->c, &q, left), zp);
    q = eq_mve_rq_load(&rq4[3]);
    d = vaddq_n_s32(eq_mve_rq(s->d, &q, left), zp);
    e = vqmovntq_s32(vqmovnbq_s32(e, a), b);   /* channels 0, 2, ..., 14 */
    o = vqmovntq_s32(vqmovnbq_s32(o, c), d);   /* channels 1, 3, ..., 15 */
    r = vqmovntq_s16(vqmovnbq_s16(r, e), o);   /* channels 0..15, saturated to int8 */
    if (narrow) {
        r = vminq_s8(vmaxq_s8(r, lo), hi);
    }
    if (full) {
        vstrbq_s8(y, r);
    } else {
        vstrbq_p_s8(y, r, pred);
    }
}

/* Some lane of n eq_rq4 blocks shifts left. */
EQ_INLINE int eq_mve_any_left(const eq_rq4 *rq, int32_t blocks)
{
    int32_t b, i;
    for (b = 0; b < blocks; ++b) {
        for (i = 0; i < 4; ++i) {
            if (rq[b].left[i] != 0) {
                return 1;
            }
        }
    }
    return 0;
}

#endif /* __ARM_FEATURE_MVE */
#endif /* EQ_NHWC_MVE_H */
