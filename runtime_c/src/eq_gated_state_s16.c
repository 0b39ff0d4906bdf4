/* The recurrent state in int16 (docs/semantics.md): QGatedState and QNarrow16.
 *
 * eq_gated_state_s16: y = sat16(MBQM(g * state, s_mult, s_shift) + MBQM(w * (cand - cand_zp),
 * u_mult, u_shift)) with g = gate - gate_zp and w = cand_gate - cand_gate_zp, or one - g when
 * cand_gate is NULL (GRU's 1 - z). |g| <= 255 and |state| <= 2^15 keep the state product below
 * 2^23 and |w| <= 256 the candidate product below 2^16; s_shift <= 6 and u_shift <= 14 keep both
 * MBQM inputs in int32 after the left shift and each term below 2^30, so the sum fits int32.
 * In-place (y over state) is fine: element i is read before it is written.
 *
 * eq_narrow_s16_s8: y = clamp(y_zp + MBQM(x, mult, shift), -128, 127); |x| <= 2^15, shift <= 15. */
#include "eq_internal.h"

size_t eq_gated_state_s16_scratch_size(const eq_gated_state_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_gated_state_s16(const eq_gated_state_params *p, const int16_t *state, const int8_t *gate,
                             const int8_t *cand, const int8_t *cand_gate, int16_t *y)
{
    int32_t i;
    if (p == NULL || state == NULL || gate == NULL || cand == NULL || y == NULL || p->size < 0 ||
        !eq_zp_ok(p->gate_zp) || !eq_zp_ok(p->cand_zp) || !eq_zp_ok(p->cand_gate_zp) ||
        p->s_shift < -31 || p->s_shift > 6 || p->u_shift < -31 || p->u_shift > 14 ||
        (cand_gate == NULL && (p->one < 1 || p->one > 256))) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        const int32_t g = (int32_t)gate[i] - p->gate_zp;
        const int32_t w = cand_gate != NULL ? (int32_t)cand_gate[i] - p->cand_gate_zp : p->one - g;
        const int32_t kept = multiply_by_quantized_multiplier(g * (int32_t)state[i], p->s_mult, p->s_shift);
        const int32_t added = multiply_by_quantized_multiplier(w * ((int32_t)cand[i] - p->cand_zp),
                                                               p->u_mult, p->u_shift);
        y[i] = (int16_t)clamp(kept + added, -32768, 32767);
    }
    return EQ_OK;
}

size_t eq_narrow_s16_s8_scratch_size(const eq_narrow_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_narrow_s16_s8(const eq_narrow_params *p, const int16_t *x, int8_t *y)
{
    int32_t i;
    if (p == NULL || x == NULL || y == NULL || p->size < 0 || !eq_zp_ok(p->y_zp) ||
        p->shift < -31 || p->shift > 15) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        y[i] = eq_out_s8(multiply_by_quantized_multiplier(x[i], p->mult, p->shift), p->y_zp, -128, 127);
    }
    return EQ_OK;
}
