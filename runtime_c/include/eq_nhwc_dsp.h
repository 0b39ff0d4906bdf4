/* Building blocks of the _dsp NHWC kernels (Cortex-M4/M7/M33, __ARM_FEATURE_DSP), shared
 * by the kernel files and by the shape-specialised bodies generated code may include.
 * GCC on Arm only (ACLE intrinsics; `>>` of a negative value is arithmetic there).
 *
 * Dot order: SXTB16 of four int8 (k0 k1 k2 k3) gives the int16 pairs (k0, k2) and, after a
 * rotate by 8, (k1, k3). The im2col patches store each 4-block of K that way, as two words
 * (k0|k2<<16), (k1|k3<<16), so SMLAD against the SXTB16 of the weights' natural bytes sums
 * k0 w0 + k2 w2 and k1 w1 + k3 w3: the whole 4-block, no reordering anywhere.
 * A 2-pixel patch interleaves the pixels per 4-block: p0 (02, 13), p1 (02, 13), 16 bytes.
 */
#ifndef EQ_NHWC_DSP_H
#define EQ_NHWC_DSP_H

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

#include <arm_acle.h>
#include <stdint.h>

#include "eq_kernels_nhwc.h"
#include "eq_nhwc_requant.h"

#define EQ_INLINE static inline __attribute__((always_inline))

/* GCC 12's arm_acle.h has no __ror, so it is written by hand (it costs an instruction: the
 * compiler does not fold it into SXTB16's rotate field; eq_sxtb16_ror8 does). */
EQ_INLINE uint32_t eq_ror8(uint32_t v)
{
    return (v >> 8) | (v << 24);
}

EQ_INLINE uint32_t eq_ld32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);  /* unaligned-safe: the M4/M7/M33 load unaligned words */
    return v;
}

/* MBQM(acc, mult, shift) from an eq_rq, with |result| < 2^31 - 128 (the fast path's |v| is
 * below 2^30 + 2^29; the rare shift >= 0 path is pre-clamped), so adding y_zp cannot
 * overflow. */
EQ_INLINE int32_t eq_dsp_rq(int32_t acc, const eq_rq *q)
{
    if (__builtin_expect(q->rs < 0, 0)) {
        const int32_t v = eq_rq_left(acc, q);
        return v < -1024 ? -1024 : (v > 1024 ? 1024 : v);
    }
    return (int32_t)((int64_t)eq_rq_sum(acc, q) >> 32) >> q->rs;
}

/* clamp(v, lo, hi) for v already saturated to int8 (SSAT): the narrow clamp only when the
 * layer has one (a fused Relu with y_zp > -128, Relu6, Clip). */
EQ_INLINE int32_t eq_dsp_out(int32_t v, int32_t zp, int32_t lo, int32_t hi, int narrow)
{
    int32_t y = __ssat(v + zp, 8);
    if (narrow) {
        y = y < lo ? lo : y;
        y = y > hi ? hi : y;
    }
    return y;
}

/* SXTB16 of (v ror 8): the odd bytes (k1, k3) as int16. GCC does not fold the rotate into
 * the instruction's rotate field by itself. */
EQ_INLINE uint32_t eq_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* One 4-block of the 2x2 product (inline assembly: GCC splits the LDRDs and spills
 * otherwise). In: a00 a01 a10 a11 accumulators, pp patch, wp weights (both advanced);
 * clobbers the temporaries. 3 LDRD (post-increment), 4 SXTB16, 8 SMLAD. */
#define EQ_DSP_MM2X2_BLOCK                                  \
    "ldrd   %[w0], %[w1], [%[wp]], #8\n\t"                  \
    "ldrd   %[pe], %[po], [%[pp]], #8\n\t"                  \
    "sxtb16 %[we0], %[w0]\n\t"                              \
    "sxtb16 %[w0], %[w0], ror #8\n\t"                       \
    "sxtb16 %[we1], %[w1]\n\t"                              \
    "sxtb16 %[w1], %[w1], ror #8\n\t"                       \
    "smlad  %[a00], %[pe], %[we0], %[a00]\n\t"              \
    "smlad  %[a00], %[po], %[w0], %[a00]\n\t"               \
    "smlad  %[a01], %[pe], %[we1], %[a01]\n\t"              \
    "smlad  %[a01], %[po], %[w1], %[a01]\n\t"               \
    "ldrd   %[pe], %[po], [%[pp]], #8\n\t"                  \
    "smlad  %[a10], %[pe], %[we0], %[a10]\n\t"              \
    "smlad  %[a10], %[po], %[w0], %[a10]\n\t"               \
    "smlad  %[a11], %[pe], %[we1], %[a11]\n\t"              \
    "smlad  %[a11], %[po], %[w1], %[a11]\n\t"

/* Two pixels x two output channels: r[2c + p] = b_c + patch_p . w_c for c, p in {0, 1},
 * over `blocks` (>= 1) 4-blocks. patch: 2-pixel interleaved
 * dot-order int16; w: a DSP channel pair (packing "dsp": per 4-block, 4 bytes of channel
 * c then 4 of channel c + 1); both word aligned. One assembly statement (GCC splits the
 * LDRDs and spills otherwise): an odd first block, then two blocks per loop pass,
 * 34 instructions per 32 MACs. */
EQ_INLINE void eq_dsp_mm2x2(const uint32_t *patch, const uint32_t *w, int32_t blocks, int32_t b0, int32_t b1,
                            int32_t *r)
{
    int32_t a00 = b0, a01 = b1, a10 = b0, a11 = b1;
    uint32_t w0, w1, we0, we1, pe, po;
    const uint32_t *end = w + 2 * blocks;
    __asm__("tst    %[n], #1\n\t"
            "beq    2f\n\t"
            EQ_DSP_MM2X2_BLOCK
            "2:\n\t"
            "cmp    %[wp], %[end]\n\t"
            "beq    3f\n\t"
            "1:\n\t"
            EQ_DSP_MM2X2_BLOCK EQ_DSP_MM2X2_BLOCK
            "cmp    %[wp], %[end]\n\t"
            "bne    1b\n\t"
            "3:\n\t"
            : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [pp] "+r"(patch),
              [wp] "+r"(w), [w0] "=&r"(w0), [w1] "=&r"(w1), [we0] "=&r"(we0), [we1] "=&r"(we1),
              [pe] "=&r"(pe), [po] "=&r"(po)
            : [end] "r"(end), [n] "r"(blocks)
            : "memory", "cc");
    r[0] = a00;
    r[1] = a10;
    r[2] = a01;
    r[3] = a11;
}

/* Four int8 channels as dot-order int16 words into a 2-pixel patch block. */
EQ_INLINE void eq_dsp_put4(uint32_t *blk, uint32_t x4)
{
    blk[0] = (uint32_t)__sxtb16(x4);
    blk[1] = eq_sxtb16_ror8(x4);
}

/* Patch position of element k of pixel `pix` (0/1) in a 2-pixel dot-order patch (int16
 * index): 4-block k >> 2, pixel offset 4, and within the block 0, 2, 1, 3. */
EQ_INLINE int32_t eq_dsp_slot(int32_t k, int32_t pix)
{
    const int32_t j = k & 3;
    return ((k >> 2) << 3) + (pix << 2) + (j == 1 ? 2 : j == 2 ? 1 : j);
}

/* The fused epilogue of two output pixels: acc holds [channel][pixel] int32 pairs for n
 * channels; y0[c] and y0[c + stride] get pixel 0's and pixel 1's bytes. A separate short
 * loop, so the accumulation loops keep their registers.
 * The common case (every channel's shift <= -1, clamp = the int8 range) is one assembly
 * loop: per channel two LDRD of the eq_rq, then per pixel LDR, AND, SUBS, SBC, SMLAL, ASR,
 * ADD, SSAT, STRB: 11.5 instructions per output with the loop. */
EQ_INLINE void eq_dsp_requant_fast(const int32_t *acc, int32_t n, const eq_rq *rq, int32_t zp, int8_t *y0,
                                   int32_t stride)
{
    const int32_t *end = acc + 2 * n;
    int32_t a, m, rs, hi, lo;
    uint32_t clo, chi;
    __asm__ volatile(
        "1:\n\t"
        "ldrd   %[m], %[rs], [%[rq]], #8\n\t"
        "ldrd   %[clo], %[chi], [%[rq]], #8\n\t"
        "ldr    %[a], [%[acc]], #4\n\t"
        "and    %[lo], %[a], #0x80000000\n\t"
        "subs   %[lo], %[clo], %[lo]\n\t"
        "sbc    %[hi], %[chi], #0\n\t"
        "smlal  %[lo], %[hi], %[a], %[m]\n\t"
        "asr    %[hi], %[hi], %[rs]\n\t"
        "add    %[hi], %[hi], %[zp]\n\t"
        "ssat   %[hi], #8, %[hi]\n\t"
        "strb   %[hi], [%[y]]\n\t"
        "ldr    %[a], [%[acc]], #4\n\t"
        "and    %[lo], %[a], #0x80000000\n\t"
        "subs   %[lo], %[clo], %[lo]\n\t"
        "sbc    %[hi], %[chi], #0\n\t"
        "smlal  %[lo], %[hi], %[a], %[m]\n\t"
        "asr    %[hi], %[hi], %[rs]\n\t"
        "add    %[hi], %[hi], %[zp]\n\t"
        "ssat   %[hi], #8, %[hi]\n\t"
        "strb   %[hi], [%[y], %[stride]]\n\t"
        "add    %[y], %[y], #1\n\t"
        "cmp    %[acc], %[end]\n\t"
        "bne    1b\n\t"
        : [acc] "+r"(acc), [rq] "+r"(rq), [y] "+r"(y0), [a] "=&r"(a), [m] "=&r"(m), [rs] "=&r"(rs),
          [clo] "=&r"(clo), [chi] "=&r"(chi), [lo] "=&r"(lo), [hi] "=&r"(hi)
        : [end] "r"(end), [zp] "r"(zp), [stride] "r"(stride)
        : "memory", "cc");
}

/* The general epilogue (a channel with shift >= 0, or a narrow clamp), in C. */
EQ_INLINE void eq_dsp_requant_general(const int32_t *acc, int32_t n, const eq_rq *rq, int32_t zp, int32_t lo,
                                      int32_t hi, int8_t *y0, int32_t stride)
{
    int32_t c;
    for (c = 0; c < n; ++c, acc += 2) {
        y0[c] = (int8_t)eq_dsp_out(eq_dsp_rq(acc[0], &rq[c]), zp, lo, hi, 1);
        y0[c + stride] = (int8_t)eq_dsp_out(eq_dsp_rq(acc[1], &rq[c]), zp, lo, hi, 1);
    }
}

EQ_INLINE void eq_dsp_requant(const int32_t *acc, int32_t n, const eq_rq *rq, int32_t zp, int32_t lo, int32_t hi,
                              int all_fast, int8_t *y0, int32_t stride)
{
    if (all_fast && lo == -128 && hi == 127) {
        eq_dsp_requant_fast(acc, n, rq, zp, y0, stride);
    } else {
        eq_dsp_requant_general(acc, n, rq, zp, lo, hi, y0, stride);
    }
}

#endif /* __ARM_FEATURE_DSP */
#endif /* EQ_NHWC_DSP_H */
