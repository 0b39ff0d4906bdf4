/* QConv depthwise 3x3 (multiplier 1, stride 1 or 2, pads <= 1), int8, NHWC, Cortex-M DSP:
 * the body is eq_nhwc_dw3x3_dsp_body.h. Packing "dsp" (packing.pack_depthwise): int16
 * weight pairs per 4 channels and tap, channels padded to 4; w word aligned. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dw3x3_dsp_body.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_dw3x3_s8_dsp_scratch_size(const eq_conv2d_params *p)
{
    return p == NULL || p->in_c < 1 ? 0 : (size_t)((p->in_c + 3) & ~3) + 4u;
}

eq_status eq_nhwc_dw3x3_s8_dsp(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                               const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, mult, c;
    int8_t *zp_row;
    eq_status st = eq_nhwc_conv_check(p, x, w, bias, rq, y, &cin_g, &mult);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_dw3x3(p)) {
        return EQ_ERR_SHAPE;
    }
    if (scratch == NULL || ((uintptr_t)w & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    zp_row = (int8_t *)eq_align4_s16(scratch);
    for (c = 0; c < ((p->in_c + 3) & ~3); ++c) {
        zp_row[c] = (int8_t)p->x_zp;
    }
    eq_nhwc_dw3x3_dsp_body(p, x, w, bias, rq, zp_row, y);
    return EQ_OK;
}

#endif
