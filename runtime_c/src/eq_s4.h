/* int4 weights packed two per byte (private to the s4 kernels; layout in eq_kernels.h).
 *
 * Value i of a weight row is in byte i >> 1: the low nibble when i is even, the high nibble
 * when i is odd. A row of k values takes (k + 1) >> 1 bytes; an odd row's last high nibble
 * is padding (0). Values are two's complement nibbles in [-8, 7] (the compiler writes
 * [-7, 7]: symmetric, qmax = 7).
 *
 * Sign extension without a branch, and without >> on a negative value or a narrowing
 * cast to a signed type (both implementation-defined in C99; eq_fixedpoint.h avoids them
 * too): a nibble n in [0, 15] becomes (n ^ 8) - 8. The DSP path does the same on four
 * nibbles at once, one per byte lane (XOR, then USUB8: per-lane subtraction, no borrow
 * between lanes), and SXTB16 widens the bytes. */
#ifndef EQ_S4_H
#define EQ_S4_H

#include <stdint.h>

#include "eq_internal.h"

#define EQ_S4_LOW_NIBBLES 0x0F0F0F0Fu

static inline int32_t eq_s4_row_bytes(int32_t k)
{
    return (k + 1) >> 1;
}

/* One nibble (0..15, the low 4 bits of n) -> its value in [-8, 7]. */
static inline int32_t eq_s4_value(uint32_t n)
{
    return (int32_t)((n & 0xFu) ^ 8u) - 8;
}

/* Value i of a packed row. */
static inline int32_t eq_s4_get(const uint8_t *row, int32_t i)
{
    return eq_s4_value((uint32_t)row[i >> 1] >> ((uint32_t)(i & 1) << 2));
}

/* ---- dot product of the im2col paths: acc + sum_{i<k} a[i] * w[i] ---------------------
 * a holds (x - x_zp) as int16 in [-255, 255] in s4 dot order, w a packed row (starting at
 * value 0, so at a byte boundary). As for the s8 dot (eq_internal.h), integer addition is
 * exact in any order, so the DSP and portable variants give the same int32.
 *
 * s4 dot order (DSP): a word of 4 packed bytes holds 8 values. Masking gives the even
 * values (bytes: w0 w2 w4 w6) and, shifted by 4, the odd ones (w1 w3 w5 w7); SXTB16 on
 * each and on each rotated by 8 gives the int16 pairs (w0,w4) (w2,w6) (w1,w5) (w3,w7).
 * So a full block of 8 stores a0 a4 a2 a6 a1 a5 a3 a7: value j goes to slot
 * bitreverse3(j). The last k % 8 values stay in order; the portable build uses the
 * natural order throughout. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

/* The 8 values of a packed word as int8 bytes: *even = values 0, 2, 4, 6 and *odd = 1, 3,
 * 5, 7, one per byte lane, each (n ^ 8) - 8 of its nibble n. */
static inline void eq_s4_unpack8(uint32_t w8, uint32_t *even, uint32_t *odd)
{
    const uint32_t u = w8 ^ 0x88888888u;  /* every nibble biased to [0, 15] */
    *even = (uint32_t)__usub8((uint8x4_t)(u & EQ_S4_LOW_NIBBLES), (uint8x4_t)0x08080808u);
    *odd = (uint32_t)__usub8((uint8x4_t)((u >> 4) & EQ_S4_LOW_NIBBLES), (uint8x4_t)0x08080808u);
}

static inline uint32_t eq_ror8(uint32_t v)
{
    return (v >> 8) | (v << 24);  /* GCC folds this into SXTB16's rotation */
}

static inline int32_t eq_dot_slot_s4(int32_t i, int32_t k)
{
    const int32_t j = i & 7;
    return i < (k & ~7) ? (i & ~7) | ((j & 1) << 2) | (j & 2) | ((j >> 2) & 1) : i;
}

static inline int32_t eq_dot_s16_s4(const int16_t *a, const uint8_t *w, int32_t k, int32_t acc)
{
    int32_t i = 0;
    for (; k - i >= 8; i += 8, a += 8) {
        uint32_t ev, od;
        eq_s4_unpack8(eq_load_u32(w + (i >> 1)), &ev, &od);
        acc = __smlad((int16x2_t)eq_load_u32(a), __sxtb16((int8x4_t)ev), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 2), __sxtb16((int8x4_t)eq_ror8(ev)), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 4), __sxtb16((int8x4_t)od), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 6), __sxtb16((int8x4_t)eq_ror8(od)), acc);
    }
    for (; i < k; ++i) {
        acc += (int32_t)*a++ * eq_s4_get(w, i);
    }
    return acc;
}

/* Two packed rows against the same activations: each patch word is loaded once. */
static inline void eq_dot2_s16_s4(const int16_t *a, const uint8_t *w0, const uint8_t *w1,
                                  int32_t k, int32_t *acc0, int32_t *acc1)
{
    int32_t s0 = *acc0, s1 = *acc1, i = 0;
    for (; k - i >= 8; i += 8, a += 8) {
        const int16x2_t a04 = (int16x2_t)eq_load_u32(a), a26 = (int16x2_t)eq_load_u32(a + 2);
        const int16x2_t a15 = (int16x2_t)eq_load_u32(a + 4), a37 = (int16x2_t)eq_load_u32(a + 6);
        uint32_t ev, od;
        eq_s4_unpack8(eq_load_u32(w0 + (i >> 1)), &ev, &od);
        s0 = __smlad(a04, __sxtb16((int8x4_t)ev), s0);
        s0 = __smlad(a26, __sxtb16((int8x4_t)eq_ror8(ev)), s0);
        s0 = __smlad(a15, __sxtb16((int8x4_t)od), s0);
        s0 = __smlad(a37, __sxtb16((int8x4_t)eq_ror8(od)), s0);
        eq_s4_unpack8(eq_load_u32(w1 + (i >> 1)), &ev, &od);
        s1 = __smlad(a04, __sxtb16((int8x4_t)ev), s1);
        s1 = __smlad(a26, __sxtb16((int8x4_t)eq_ror8(ev)), s1);
        s1 = __smlad(a15, __sxtb16((int8x4_t)od), s1);
        s1 = __smlad(a37, __sxtb16((int8x4_t)eq_ror8(od)), s1);
    }
    for (; i < k; ++i, ++a) {
        s0 += (int32_t)*a * eq_s4_get(w0, i);
        s1 += (int32_t)*a * eq_s4_get(w1, i);
    }
    *acc0 = s0;
    *acc1 = s1;
}

#else

static inline int32_t eq_dot_slot_s4(int32_t i, int32_t k)
{
    (void)k;
    return i;
}

static inline int32_t eq_dot_s16_s4(const int16_t *a, const uint8_t *w, int32_t k, int32_t acc)
{
    int32_t i;
    for (i = 0; i + 1 < k; i += 2) {  /* one byte, two values */
        const uint32_t b = w[i >> 1];
        acc += (int32_t)a[i] * eq_s4_value(b);
        acc += (int32_t)a[i + 1] * eq_s4_value(b >> 4);
    }
    if (i < k) {
        acc += (int32_t)a[i] * eq_s4_get(w, i);
    }
    return acc;
}

static inline void eq_dot2_s16_s4(const int16_t *a, const uint8_t *w0, const uint8_t *w1,
                                  int32_t k, int32_t *acc0, int32_t *acc1)
{
    *acc0 = eq_dot_s16_s4(a, w0, k, *acc0);
    *acc1 = eq_dot_s16_s4(a, w1, k, *acc1);
}

#endif

#endif /* EQ_S4_H */
