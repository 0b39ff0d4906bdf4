/* The requantization of the NHWC kernels (eq_kernels_nhwc.h explains the constants and why
 * they are exact): y = clamp(y_zp + MBQM(acc, mult, shift), lo, hi) from an eq_rq.
 *
 * eq_rq_c is portable C99 (every negative right shift through eq_asr32/64); the _dsp
 * variants use eq_dsp_rq (eq_nhwc_dsp.h), the same function for GCC on Arm, where `>>` of a
 * negative value is an arithmetic shift (GCC documents it): AND, SUBS, SBC, SMLAL, ASR.
 * Both take the rare shift >= 0 case (rs == -1) through the reference's
 * saturating_rounding_doubling_high_mul.
 */
#ifndef EQ_NHWC_REQUANT_H
#define EQ_NHWC_REQUANT_H

#include <stdint.h>

#include "eq_fixedpoint.h"
#include "eq_kernels_nhwc.h"

/* The int32 whose two's complement bits are v. The kernels accumulate modulo 2^32 in
 * uint32_t (eq_kernels_nhwc.h, "Accumulator"); C leaves the conversion of an out-of-range
 * unsigned value to a signed type implementation-defined, so it is written out (GCC
 * compiles it to nothing). */
static inline int32_t eq_s32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* MBQM(acc, mult, shift) for shift >= 0 (rs == -1; c_hi is the shift): the precondition
 * (acc << shift fits int32) is the compiler's range proof, as for the reference. */
static inline int32_t eq_rq_left(int32_t acc, const eq_rq *q)
{
    return saturating_rounding_doubling_high_mul((int32_t)((uint32_t)acc << q->c_hi), q->mult);
}

/* The 64-bit sum c + acc * mult - [acc < 0] * 2^31, computed modulo 2^64 (it fits int64:
 * |acc * mult| < 2^62, c < 2^62), so the unsigned arithmetic is exact. */
static inline uint64_t eq_rq_sum(int32_t acc, const eq_rq *q)
{
    const uint64_t c = (((uint64_t)(uint32_t)q->c_hi << 32) | q->c_lo) - ((uint32_t)acc & 0x80000000u);
    return c + (uint64_t)((int64_t)acc * q->mult);
}

static inline int32_t eq_rq_c(int32_t acc, const eq_rq *q)
{
    if (q->rs < 0) {
        return eq_rq_left(acc, q);
    }
    return eq_asr32((int32_t)eq_asr64((int64_t)eq_rq_sum(acc, q), 32), q->rs);
}

/* clamp(zp + v, lo, hi) for any int32 v (v is pre-clamped so the add cannot overflow; once
 * |v| > 1024 the result is saturated anyway). */
static inline int8_t eq_rq_out(int32_t v, int32_t zp, int32_t lo, int32_t hi)
{
    v = v < -1024 ? -1024 : (v > 1024 ? 1024 : v);
    v += zp;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#endif /* EQ_NHWC_REQUANT_H */
