/* QConv 1x1, int8, NHWC, Cortex-M4/M7/M33 DSP (SXTB16/SMLAD): the body is
 * eq_nhwc_pointwise_dsp_body.h. Packing "dsp" (channel pairs per 4-block, K4 padded):
 * w, bias and rq as packing.pack_conv writes them; w word aligned. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_pointwise_dsp_body.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_pointwise_s8_dsp_scratch_size(const eq_conv2d_params *p)
{
    if (p == NULL || p->in_c < 1 || p->out_c < 1) {
        return 0;
    }
    return (size_t)((p->in_c + 3) >> 2) * 16u + (size_t)((p->out_c + 1) >> 1) * 16u + 4u;
}

eq_status eq_nhwc_pointwise_s8_dsp(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                   const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_pointwise(p)) {
        return EQ_ERR_SHAPE;
    }
    if (scratch == NULL || ((uintptr_t)w & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    eq_nhwc_pointwise_dsp_body(p, x, w, bias, rq, eq_rq_all_fast(rq, p->out_c),
                               (uint32_t *)eq_align4_s16(scratch), y);
    return EQ_OK;
}

#endif
