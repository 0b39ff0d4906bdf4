/* QConv depthwise 3x3 (multiplier 1, stride 1 or 2, pads <= 1), int8, NHWC, Cortex-M55
 * Helium: the body is eq_nhwc_dw3x3_mve_body.h. Packing "mve" (packing.pack_depthwise):
 * per 8 channels the 9 taps' 8 weights; bias and eq_rq4 in packing.DW_MVE_LANES order;
 * channels padded to 8. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dw3x3_mve_body.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_dw3x3_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    return p == NULL || p->in_c < 1 ? 0 : (size_t)((p->in_c + 7) & ~7) + 12u;
}

eq_status eq_nhwc_dw3x3_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                               const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t mult;
    int8_t *zp_row;
    eq_status st = eq_nhwc_dw_mve_setup(p, x, w, bias, rq, scratch, y, &mult, &zp_row);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_dw3x3(p)) {
        return EQ_ERR_SHAPE;
    }
    if (eq_mve_any_left(rq, ((p->out_c + 7) & ~7) >> 2)) {
        eq_nhwc_dw3x3_mve_body(p, x, w, bias, rq, 1, zp_row, y);
    } else {
        eq_nhwc_dw3x3_mve_body(p, x, w, bias, rq, 0, zp_row, y);
    }
    return EQ_OK;
}

#endif
