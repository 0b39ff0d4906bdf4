/* QGemm (fully connected), int8, Cortex-M55 Helium (MVE): per row and block of 4 output
 * features, four VMLADAVA dot products per 16 inputs (eq_mve_dot4), requantized, clamped
 * and stored as 4 bytes. Packing "mve" (packing.pack_fc): blocks of 4 features x 16
 * inputs, K16 and out_features padded to 4; eq_rq4 blocks. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_mve.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_fc_s8_mve_scratch_size(const eq_fc_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_fc_s8_mve(const eq_fc_params *p, const int8_t *x, const int8_t *w,
                            const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t n, j, k, co, full, blocks;
    int left, tail;
    int32x4_t lo, hi;
    mve_pred16_t tail_p;
    (void)scratch;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL || p->batch < 1 ||
        p->in_features < 1 || p->out_features < 1 || !eq_zp_ok(p->x_zp) || !eq_zp_ok(p->y_zp) ||
        !eq_clamp_ok(p->act_min, p->act_max)) {
        return EQ_ERR_ARG;
    }
    k = p->in_features;
    co = p->out_features;
    blocks = (co + 3) >> 2;
    if (!eq_rq4_ok(rq, blocks) || ((uintptr_t)w & 3u) != 0 || ((uintptr_t)rq & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    full = k >> 4;
    tail = (k & 15) != 0;
    tail_p = vctp8q((uint32_t)(k & 15));
    left = eq_mve_any_left(rq, blocks);
    lo = vdupq_n_s32(p->act_min);
    hi = vdupq_n_s32(p->act_max);
    for (n = 0; n < p->batch; ++n, x += k, y += co) {
        const int8_t *wj = w;
        for (j = 0; j < co; j += 4, wj += ((k + 15) & ~15) * 4) {
            const eq_mve_rqv q = eq_mve_rq_load(&rq[j >> 2]);
            const int32x4_t acc = vaddq_s32(eq_mve_dot4(x, wj, full, tail, tail_p), vldrwq_s32(bias + j));
            vstrbq_p_s32(y + j, eq_mve_out(eq_mve_rq(acc, &q, left), p->y_zp, lo, hi), vctp32q((uint32_t)(co - j)));
        }
    }
    return EQ_OK;
}

#endif
