/* QGatedState, the recurrent state update in int16 (docs/semantics.md).
 * G = gate_table[gate + 128], C = cand_table[cand + 128] (Q0.15), W =
 * cand_gate_table[cand_gate + 128], or 32768 - G when cand_gate is NULL (GRU's 1 - z);
 * y = sat16(MBQM(G * state, s_mult, s_shift) + MBQM(W * C, u_mult, u_shift)).
 * |G|, |W|, |C|, |state| <= 2^15, so both products are at most 2^30 in magnitude; with both
 * shifts <= 0 each rescaled term is below 2^30 and their sum fits int32. In-place (y over
 * state) is fine: element i is read before it is written. */
#include "eq_internal.h"

size_t eq_gated_state_s16_scratch_size(const eq_gated_state_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_gated_state_s16(const eq_gated_state_params *p, const int16_t *state, const int8_t *gate,
                             const int8_t *cand, const int16_t *gate_table, const int16_t *cand_table,
                             const int8_t *cand_gate, const int16_t *cand_gate_table, int16_t *y)
{
    int32_t i;
    if (p == NULL || state == NULL || gate == NULL || cand == NULL || gate_table == NULL ||
        cand_table == NULL || y == NULL || p->size < 0 || (cand_gate != NULL && cand_gate_table == NULL) ||
        p->s_shift < -31 || p->s_shift > 0 || p->u_shift < -31 || p->u_shift > 0) {
        return EQ_ERR_ARG;
    }
    for (i = 0; i < p->size; ++i) {
        const int32_t g = gate_table[(int32_t)gate[i] + 128];
        const int32_t w = cand_gate != NULL ? (int32_t)cand_gate_table[(int32_t)cand_gate[i] + 128] : 32768 - g;
        const int32_t kept = multiply_by_quantized_multiplier(g * (int32_t)state[i], p->s_mult, p->s_shift);
        const int32_t added = multiply_by_quantized_multiplier(w * (int32_t)cand_table[(int32_t)cand[i] + 128],
                                                               p->u_mult, p->u_shift);
        y[i] = (int16_t)clamp(kept + added, -32768, 32767);
    }
    return EQ_OK;
}
