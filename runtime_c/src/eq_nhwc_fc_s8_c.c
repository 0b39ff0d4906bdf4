/* QGemm (fully connected), int8, portable C99: y[n][c] = requant(bias_eff[c] +
 * sum_k x[n][k] * w[c][k]) with w [out][in] (packing.pack_fc isa "c", bias folded). */
#include "eq_nhwc_check.h"

size_t eq_nhwc_fc_s8_c_scratch_size(const eq_fc_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_fc_s8_c(const eq_fc_params *p, const int8_t *x, const int8_t *w,
                          const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t n, c, k;
    eq_status st = eq_nhwc_fc_check(p, x, w, bias, rq, y);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    for (n = 0; n < p->batch; ++n, x += p->in_features) {
        const int8_t *w_c = w;
        for (c = 0; c < p->out_features; ++c, w_c += p->in_features) {
            uint32_t acc = (uint32_t)bias[c];
            for (k = 0; k < p->in_features; ++k) {
                acc += (uint32_t)(x[k] * w_c[k]);
            }
            *y++ = eq_rq_out(eq_rq_c(eq_s32(acc), &rq[c]), p->y_zp, p->act_min, p->act_max);
        }
    }
    return EQ_OK;
}
