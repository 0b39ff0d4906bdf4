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

#endif /* EQ_INTERNAL_H */
