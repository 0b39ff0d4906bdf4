/* QAdd of two same-shape tensors, int8, Cortex-M55 Helium: 4 elements per vector; the input
 * rescalings are the compile-time tables of packing.pack_add, looked up with gathers indexed
 * by the sign-extended bytes (the base is the tables' q = 0 entry; the 32-bit address
 * arithmetic takes the negative offsets), then one vector requantization (eq_rq4, four
 * equal lanes), y_zp, clamp and a 4-byte store. |table| < 2^28: the sum fits. In-place
 * (y == a or y == b) is fine: each vector is read before it is written. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_add_s8_mve_scratch_size(const eq_nhwc_add_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_add_s8_mve(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b,
                             const int32_t *table_a, const int32_t *table_b, const eq_rq4 *rq, int8_t *y)
{
    int32_t i;
    int left;
    eq_mve_rqv q;
    int32x4_t lo, hi;
    const int32_t *ta, *tb;
    if (p == NULL || a == NULL || b == NULL || table_a == NULL || table_b == NULL || rq == NULL || y == NULL ||
        p->size < 1 || !eq_zp_ok(p->y_zp) || !eq_clamp_ok(p->act_min, p->act_max) || !eq_rq4_ok(rq, 1) ||
        ((uintptr_t)rq & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    ta = table_a + 128;
    tb = table_b + 128;
    left = eq_mve_any_left(rq, 1);
    q = eq_mve_rq_load(rq);
    lo = vdupq_n_s32(p->act_min);
    hi = vdupq_n_s32(p->act_max);
    for (i = 0; i < p->size; i += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)(p->size - i));
        const uint32x4_t ia = vreinterpretq_u32_s32(vldrbq_z_s32(a + i, pr));
        const uint32x4_t ib = vreinterpretq_u32_s32(vldrbq_z_s32(b + i, pr));
        const int32x4_t s = vaddq_s32(vldrwq_gather_shifted_offset_z_s32(ta, ia, pr),
                                      vldrwq_gather_shifted_offset_z_s32(tb, ib, pr));
        vstrbq_p_s32(y + i, eq_mve_out(eq_mve_rq(s, &q, left), p->y_zp, lo, hi), pr);
    }
    return EQ_OK;
}

#endif
