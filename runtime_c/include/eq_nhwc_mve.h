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

/* One 16-column chunk: x from [x] (post-increment), the block's 4 weight vectors from [w]
 * (post-increment), four VMLADAV{A} into the pinned accumulators. */
#define EQ_MVE_CHUNK(op)                                         \
    "vldrb.u8    %q[xv], [%[x]], #16\n\t"                        \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a0], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a1], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a2], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a3], %q[xv], %q[wv]\n\t"
/* The same with x loaded under the tail predicate (VPR.P0 = pred). */
#define EQ_MVE_TAIL_CHUNK(op)                                    \
    "vmsr        p0, %[pred]\n\t"                                \
    "vpst\n\t"                                                   \
    "vldrbt.u8   %q[xv], [%[x]]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a0], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a1], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a2], %q[xv], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a3], %q[xv], %q[wv]\n\t"

/* The dot products of one row x with the 4 channels of a packed block w (per 16 columns,
 * 16 bytes of each channel; zero padded to K16), as a vector: `full` whole chunks and,
 * when tail != 0, one last chunk whose x is loaded under pred = VCTP8(k % 16) (x is never
 * read past its row; the zero-padded weights make the sum right). VMLADAV wants even
 * accumulator registers, hence one assembly statement with pinned r0/r2/r4/r6 and a
 * low-overhead loop (WLS/LE on LR): 10 instructions per chunk, 64 MACs. */
EQ_INLINE int32x4_t eq_mve_dot4(const int8_t *x, const int8_t *w, int32_t full, int tail, mve_pred16_t pred)
{
    register int32_t a0 __asm__("r0");
    register int32_t a1 __asm__("r2");
    register int32_t a2 __asm__("r4");
    register int32_t a3 __asm__("r6");
    register int32_t n __asm__("lr") = full;
    const uint32_t pr = tail ? pred : 0u;  /* 0: no tail chunk */
    int8x16_t xv, wv;
    int32x4_t out;
    __asm__ volatile(
        "cmp         lr, #0\n\t"
        "beq         4f\n\t"
        EQ_MVE_CHUNK("vmladav.s8 ")
        "subs        lr, lr, #1\n\t"
        "wls         lr, lr, 2f\n\t"
        "1:\n\t"
        EQ_MVE_CHUNK("vmladava.s8")
        "le          lr, 1b\n\t"
        "2:\n\t"
        "cmp         %[pred], #0\n\t"
        "beq         3f\n\t"
        EQ_MVE_TAIL_CHUNK("vmladava.s8")
        "b           3f\n\t"
        "4:\n\t"
        EQ_MVE_TAIL_CHUNK("vmladav.s8 ")
        "3:\n\t"
        "vmov        %q[out][2], %q[out][0], %[a0], %[a2]\n\t"
        "vmov        %q[out][3], %q[out][1], %[a1], %[a3]\n\t"
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "+r"(x), [w] "+r"(w),
          [xv] "=&w"(xv), [wv] "=&w"(wv), [n] "+r"(n), [out] "=w"(out)
        : [pred] "r"(pr)
        : "memory", "cc");
    return out;
}

/* ---- two pixels x four channels ------------------------------------------------------
 * The same dot products for two rows at once: each weight vector serves both, so a chunk
 * of 16 columns costs 2 + 4 loads and 8 VMLADAV for 128 MACs. Eight accumulators need all
 * eight even registers (r0 ... r12 and lr), so the loop counts with SUBS/BNE. */
#define EQ_MVE_CHUNK2_MACS(op)                                   \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a0], %q[x0], %q[wv]\n\t"                             \
    op "  %[b0], %q[x1], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a1], %q[x0], %q[wv]\n\t"                             \
    op "  %[b1], %q[x1], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a2], %q[x0], %q[wv]\n\t"                             \
    op "  %[b2], %q[x1], %q[wv]\n\t"                             \
    "vldrb.u8    %q[wv], [%[w]], #16\n\t"                        \
    op "  %[a3], %q[x0], %q[wv]\n\t"                             \
    op "  %[b3], %q[x1], %q[wv]\n\t"
#define EQ_MVE_CHUNK2(op)                                        \
    "vldrb.u8    %q[x0], [%[p0]], #16\n\t"                       \
    "vldrb.u8    %q[x1], [%[p1]], #16\n\t"                       \
    EQ_MVE_CHUNK2_MACS(op)
#define EQ_MVE_OUT2                                              \
    "vmov        %q[r0][2], %q[r0][0], %[a0], %[a2]\n\t"         \
    "vmov        %q[r0][3], %q[r0][1], %[a1], %[a3]\n\t"         \
    "vmov        %q[r1][2], %q[r1][0], %[b0], %[b2]\n\t"         \
    "vmov        %q[r1][3], %q[r1][1], %[b1], %[b3]\n\t"
#define EQ_MVE_ACC8                                              \
    register int32_t a0 __asm__("r0"), a1 __asm__("r2"), a2 __asm__("r4"), a3 __asm__("r6"); \
    register int32_t b0 __asm__("r8"), b1 __asm__("r10"), b2 __asm__("r12"), b3 __asm__("lr")
#define EQ_MVE_ACC8_OUT                                          \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0), [b1] "=&r"(b1), \
    [b2] "=&r"(b2), [b3] "=&r"(b3)

/* eq_mve_dot4 for rows x0 and x1 of `full` (>= 1) whole chunks: out[0] for x0, out[1]
 * for x1 (a row with a partial last chunk takes eq_mve_dot4, which predicates it). */
EQ_INLINE void eq_mve_dot4x2(const int8_t *x0, const int8_t *x1, const int8_t *w, int32_t full, int32x4_t out[2])
{
    EQ_MVE_ACC8;
    int32_t n = full;
    int8x16_t xa, xb, wv;
    int32x4_t r0, r1;
    __asm__ volatile(
        EQ_MVE_CHUNK2("vmladav.s8 ")
        "subs        %[n], %[n], #1\n\t"
        "beq         2f\n\t"
        "1:\n\t"
        EQ_MVE_CHUNK2("vmladava.s8")
        "subs        %[n], %[n], #1\n\t"
        "bne         1b\n\t"
        "2:\n\t"
        EQ_MVE_OUT2
        : EQ_MVE_ACC8_OUT, [p0] "+r"(x0), [p1] "+r"(x1), [w] "+r"(w), [n] "+r"(n),
          [x0] "=&w"(xa), [x1] "=&w"(xb), [wv] "=&w"(wv), [r0] "=w"(r0), [r1] "=w"(r1)
        :
        : "memory", "cc");
    out[0] = r0;
    out[1] = r1;
}

/* ---- depthwise: 8 channels per vector of int16 lanes ----------------------------------
 * VLDRB.S16 widens 8 channels to int16 lanes; VMULLB/VMULLT multiply the even/odd lanes into
 * int32 products, added into two int32 sums holding the channels (0, 2, 4, 6) and
 * (1, 3, 5, 7): packing.DW_MVE_LANES, the order of a block's bias and eq_rq4 entries.
 * 6 instructions per tap and 8 channels (2 loads, 2 multiplies, 2 adds). */
typedef struct {
    int32x4_t even, odd;
} eq_mve_acc8;

EQ_INLINE void eq_mve_dw_tap(eq_mve_acc8 *s, int16x8_t x, int16x8_t w)
{
    s->even = vaddq_s32(s->even, vmullbq_int_s16(x, w));
    s->odd = vaddq_s32(s->odd, vmulltq_int_s16(x, w));
}

/* One tap from memory, the weight pointer w8 stepping on by 8 (post-increment). */
#define EQ_MVE_DW_TAP_NEXT(s, xp, w8)                                                            \
    do {                                                                                         \
        int16x8_t x_, w_;                                                                        \
        int32x4_t t_;                                                                            \
        __asm__("vldrb.s16   %q[x], [%[xa]]\n\t"                                                \
                "vldrb.s16   %q[w], [%[wa]], #8\n\t"                                            \
                "vmullb.s16  %q[t], %q[x], %q[w]\n\t"                                           \
                "vadd.i32    %q[e], %q[e], %q[t]\n\t"                                           \
                "vmullt.s16  %q[t], %q[x], %q[w]\n\t"                                           \
                "vadd.i32    %q[o], %q[o], %q[t]\n\t"                                           \
                : [e] "+w"((s).even), [o] "+w"((s).odd), [x] "=&w"(x_), [w] "=&w"(w_), [t] "=&w"(t_), \
                  [wa] "+l"(w8)                                                                  \
                : [xa] "l"(xp)                                                                   \
                : "memory");                                                                     \
    } while (0)

/* One tap from memory: x at xp (8 channels), w at w8 + off; an assembly statement, so the
 * compiler neither hoists the loads of all taps nor spills them (it does both otherwise). */
#define EQ_MVE_DW_TAP_AT(s, xp, w8, off)                                                         \
    do {                                                                                         \
        int16x8_t x_, w_;                                                                        \
        int32x4_t t_;                                                                            \
        __asm__("vldrb.s16   %q[x], [%[xa]]\n\t"                                                \
                "vldrb.s16   %q[w], [%[wa], #" #off "]\n\t"                                     \
                "vmullb.s16  %q[t], %q[x], %q[w]\n\t"                                           \
                "vadd.i32    %q[e], %q[e], %q[t]\n\t"                                           \
                "vmullt.s16  %q[t], %q[x], %q[w]\n\t"                                           \
                "vadd.i32    %q[o], %q[o], %q[t]\n\t"                                           \
                : [e] "+w"((s).even), [o] "+w"((s).odd), [x] "=&w"(x_), [w] "=&w"(w_), [t] "=&w"(t_) \
                : [xa] "l"(xp), [wa] "l"(w8)  /* widening loads take r0-r7 */                    \
                : "memory");                                                                     \
    } while (0)

/* Requantize an 8-channel block (rq2: its two eq_rq4), add y_zp, narrow back to channel
 * order with saturation (VQMOVNB/T: int32 -> int16, then int16 -> int8), clamp, store the
 * low bytes of the 8 lanes (n <= 8 of them: pred, when not full). */
EQ_INLINE void eq_mve_dw_store8(const eq_mve_acc8 *s, const eq_rq4 *rq2, int left, int32_t zp, int16x8_t lo,
                                int16x8_t hi, int narrow, int8_t *y, mve_pred16_t pred, int full)
{
    eq_mve_rqv q = eq_mve_rq_load(&rq2[0]);
    const int32x4_t e = vaddq_n_s32(eq_mve_rq(s->even, &q, left), zp);
    int32x4_t o;
    int16x8_t r;
    q = eq_mve_rq_load(&rq2[1]);
    o = vaddq_n_s32(eq_mve_rq(s->odd, &q, left), zp);
    r = vqmovntq_s32(vqmovnbq_s32(vdupq_n_s16(0), e), o);  /* channels 0..7, int16 */
    if (narrow) {
        r = vminq_s16(vmaxq_s16(r, lo), hi);
    }
    r = vreinterpretq_s16_s8(vqmovnbq_s16(vdupq_n_s8(0), r));  /* int8 in each lane's low byte */
    if (full) {
        vstrbq_s16(y, r);
    } else {
        vstrbq_p_s16(y, r, pred);
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
