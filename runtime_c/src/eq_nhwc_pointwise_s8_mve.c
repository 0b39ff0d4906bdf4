/* QConv 1x1, int8, NHWC, Cortex-M55 Helium (MVE): the body is
 * eq_nhwc_pointwise_mve_body.h. Packing "mve" (packing.pack_conv): blocks of 4 channels per
 * 16 input channels, K16 and out_c padded to 4; bias padded to 4; eq_rq4 blocks. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_pointwise_mve_body.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

size_t eq_nhwc_pointwise_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_nhwc_pointwise_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                                   const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g;
    eq_status st;
    (void)scratch;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    if (!eq_nhwc_is_pointwise(p)) {
        return EQ_ERR_SHAPE;
    }
    if (!eq_rq4_ok(rq, (p->out_c + 3) >> 2) || ((uintptr_t)w & 3u) != 0 || ((uintptr_t)rq & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    /* one copy of the body, `left` a run-time flag: generated code compiles its own copy per
     * layer with the flag constant, so this shared one is kept small */
    eq_nhwc_pointwise_mve_body(p, x, w, bias, rq, eq_mve_any_left(rq, (p->out_c + 3) >> 2), y);
    return EQ_OK;
}

#endif
