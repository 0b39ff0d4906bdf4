/* Test shim: the NHWC kernels' inline requantization (eq_nhwc_requant.h) as an exported,
 * vectorised function, compared with edgeq/fixedpoint.py's MBQM on the same inputs. */
#include <stdint.h>

#include "eq_nhwc_requant.h"

void shim_nhwc_rq(int32_t n, const int32_t *x, const eq_rq *rq, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) y[i] = eq_rq_c(x[i], &rq[i]);
}
