/* QAdd of two same-shape tensors, int8, Cortex-M DSP: the input rescalings are the
 * compile-time tables of packing.pack_add (indexed by the signed byte itself, so a table
 * lookup is one load), the output requantization the SMLAL form with y_zp folded in, and
 * the clamp one SSAT unless the layer has a narrower one. |table| < 2^28: the sum fits.
 * In-place (y == a or y == b) is fine: each element is read before it is written. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_add_s8_dsp_scratch_size(const eq_nhwc_add_params *p)
{
    (void)p;
    return 0;
}

/* The common case in one assembly loop, 14 instructions per element: shift <= -23 + 1
 * (rs <= 22, so y_zp folds into the rounding constant's high word: y_zp * 2^(R-1) keeps it
 * below 2^31, eq_kernels_nhwc.h) and the int8 clamp. ta, tb point at the tables' entry for
 * q = 0, so the signed byte indexes them directly. */
static void add_fast(int32_t size, const int8_t *a, const int8_t *b, const int32_t *ta, const int32_t *tb,
                     const eq_rq *rq, int32_t zp, int8_t *y)
{
    const int8_t *end = y + size;
    const int32_t m = rq->mult, rs = rq->rs;
    const uint32_t clo = rq->c_lo;
    const int32_t chi = rq->c_hi + zp * (1 << rs);  /* |zp| <= 128, rs <= 22: no overflow */
    int32_t s, t, h;
    __asm__ volatile("1:\n\t"
                     "ldrsb  %[s], [%[a]], #1\n\t"
                     "ldrsb  %[t], [%[b]], #1\n\t"
                     "ldr    %[s], [%[ta], %[s], lsl #2]\n\t"
                     "ldr    %[t], [%[tb], %[t], lsl #2]\n\t"
                     "add    %[s], %[s], %[t]\n\t"
                     "and    %[t], %[s], #0x80000000\n\t"
                     "subs   %[t], %[clo], %[t]\n\t"
                     "sbc    %[h], %[chi], #0\n\t"
                     "smlal  %[t], %[h], %[s], %[m]\n\t"
                     "asr    %[h], %[h], %[rs]\n\t"
                     "ssat   %[h], #8, %[h]\n\t"
                     "strb   %[h], [%[y]], #1\n\t"
                     "cmp    %[y], %[end]\n\t"
                     "bne    1b\n\t"
                     : [a] "+r"(a), [b] "+r"(b), [y] "+r"(y), [s] "=&r"(s), [t] "=&r"(t), [h] "=&r"(h)
                     : [ta] "r"(ta), [tb] "r"(tb), [m] "r"(m), [rs] "r"(rs), [clo] "r"(clo), [chi] "r"(chi),
                       [end] "r"(end)
                     : "memory", "cc");
}

eq_status eq_nhwc_add_s8_dsp(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b,
                             const int32_t *table_a, const int32_t *table_b, const eq_rq *rq, int8_t *y)
{
    eq_status st = eq_nhwc_add_check(p, a, b, table_a, table_b, rq, y);
    if (st != EQ_OK) {
        return st;
    }
    if (rq->rs >= 0 && rq->rs <= 22 && p->act_min == -128 && p->act_max == 127) {
        add_fast(p->size, a, b, table_a + 128, table_b + 128, rq, p->y_zp, y);
    } else {  /* the rare general case, in C */
        int32_t i;
        for (i = 0; i < p->size; ++i) {
            const int32_t s = table_a[a[i] + 128] + table_b[b[i] + 128];
            y[i] = (int8_t)eq_dsp_out(eq_dsp_rq(s, rq), p->y_zp, p->act_min, p->act_max, 1);
        }
    }
    return EQ_OK;
}

#endif
