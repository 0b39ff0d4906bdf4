/* int4 weights packed two per byte (private to the s4 kernels; layout in eq_kernels.h).
 *
 * Value i of a weight row is in byte i >> 1: the low nibble when i is even, the high nibble
 * when i is odd. A row of k values takes (k + 1) >> 1 bytes; an odd row's last high nibble
 * is padding (0). Values are two's complement nibbles in [-8, 7] (the compiler writes
 * [-7, 7]: symmetric, qmax = 7).
 *
 * Sign extension without a branch, and without >> on a negative value or a narrowing
 * cast to a signed type (both implementation-defined in C99; eq_fixedpoint.h avoids them
 * too): one nibble n in [0, 15] becomes (n ^ 8) - 8; four nibbles, one per byte of a word,
 * become int8 bytes with n | (n & 8) * 0x1E (bits 4..7 copy bit 3; 8 * 0x1E = 0xF0 stays
 * inside its byte, so the bytes do not interact), which SXTB16 then widens. */
#ifndef EQ_S4_H
#define EQ_S4_H

#include <stdint.h>

#include "eq_internal.h"

#define EQ_S4_LOW_NIBBLES 0x0F0F0F0Fu
#define EQ_S4_SIGN_BITS 0x08080808u

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

/* Each byte's low nibble -> that byte as int8 (4 at once, for SXTB16). */
static inline uint32_t eq_s4_widen4(uint32_t nibbles)
{
    return nibbles | ((nibbles & EQ_S4_SIGN_BITS) * 0x1Eu);
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
        const uint32_t w8 = eq_load_u32(w + (i >> 1));
        const uint32_t ev = eq_s4_widen4(w8 & EQ_S4_LOW_NIBBLES);
        const uint32_t od = eq_s4_widen4((w8 >> 4) & EQ_S4_LOW_NIBBLES);
        acc = __smlad((int16x2_t)eq_load_u32(a), __sxtb16((int8x4_t)ev), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 2), __sxtb16((int8x4_t)((ev >> 8) | (ev << 24))), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 4), __sxtb16((int8x4_t)od), acc);
        acc = __smlad((int16x2_t)eq_load_u32(a + 6), __sxtb16((int8x4_t)((od >> 8) | (od << 24))), acc);
    }
    for (; i < k; ++i) {
        acc += (int32_t)*a++ * eq_s4_get(w, i);
    }
    return acc;
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

#endif

#endif /* EQ_S4_H */
