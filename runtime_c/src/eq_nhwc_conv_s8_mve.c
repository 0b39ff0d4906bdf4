/* QConv, int8, NHWC, general (groups, dilation, asymmetric pads), Cortex-M55 Helium (MVE): the
 * body (the algorithm, packing "mve") is eq_nhwc_conv_mve_body.h. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_conv_mve_body.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

/* scratch: two patches of K16 bytes. */
size_t eq_nhwc_conv_s8_mve_scratch_size(const eq_conv2d_params *p)
{
    int32_t cin_g, cout_g;
    if (p == NULL || eq_conv2d_check(p, &cin_g, &cout_g) != EQ_OK) {
        return 0;
    }
    return (size_t)((cin_g * p->kernel_h * p->kernel_w + 15) & ~15) * 2u + 4u;
}

eq_status eq_nhwc_conv_s8_mve(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const eq_rq4 *rq, void *scratch, int8_t *y)
{
    int32_t cin_g, cout_g, blocks;
    eq_status st;
    if (p == NULL || x == NULL || w == NULL || bias == NULL || rq == NULL || y == NULL || scratch == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_conv2d_check(p, &cin_g, &cout_g);
    if (st != EQ_OK) {
        return st;
    }
    blocks = (cout_g + 3) >> 2;
    if (!eq_rq4_ok(rq, blocks * p->groups) || ((uintptr_t)w & 3u) != 0 || ((uintptr_t)rq & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    eq_nhwc_conv_mve_body(p, cin_g, cout_g, x, w, bias, rq, eq_mve_any_left(rq, blocks * p->groups),
                          (int8_t *)eq_align4_s16(scratch), y);
    return EQ_OK;
}

#endif
