/* QGemm (fully connected), int8, Cortex-M DSP. Packing "dsp" (packing.pack_fc): channel
 * pairs per 4-block of K (K4 and an odd out_features padded with zeros); w word aligned.
 * Per row and 4 output channels (two pairs): each word of x is sign-extended once (SXTB16
 * into (k0, k2), (k1, k3)) and multiplied into the four channels' SXTB16'd weights with
 * SMLAD: 21 instructions per 16 MACs in one assembly loop. A K that is not a multiple of 4
 * ends with one partial block in C (x is never read past its row). */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_fc_s8_dsp_scratch_size(const eq_fc_params *p)
{
    (void)p;
    return 0;
}

/* acc[0..1] += x . pair a, acc[2..3] += x . pair b over `blocks` (>= 1) full 4-blocks. */
static inline void mm1x4(const int8_t *x, const uint32_t *wa, const uint32_t *wb, int32_t blocks, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t xw, xe, w0, w1, we;
    const int8_t *end = x + 4 * blocks;
    __asm__("1:\n\t"
            "ldr    %[xw], [%[xp]], #4\n\t"
            "ldrd   %[w0], %[w1], [%[wa]], #8\n\t"
            "sxtb16 %[xe], %[xw]\n\t"
            "sxtb16 %[xw], %[xw], ror #8\n\t"
            "sxtb16 %[we], %[w0]\n\t"
            "sxtb16 %[w0], %[w0], ror #8\n\t"
            "smlad  %[a0], %[xe], %[we], %[a0]\n\t"
            "smlad  %[a0], %[xw], %[w0], %[a0]\n\t"
            "sxtb16 %[we], %[w1]\n\t"
            "sxtb16 %[w1], %[w1], ror #8\n\t"
            "smlad  %[a1], %[xe], %[we], %[a1]\n\t"
            "smlad  %[a1], %[xw], %[w1], %[a1]\n\t"
            "ldrd   %[w0], %[w1], [%[wb]], #8\n\t"
            "sxtb16 %[we], %[w0]\n\t"
            "sxtb16 %[w0], %[w0], ror #8\n\t"
            "smlad  %[a2], %[xe], %[we], %[a2]\n\t"
            "smlad  %[a2], %[xw], %[w0], %[a2]\n\t"
            "sxtb16 %[we], %[w1]\n\t"
            "sxtb16 %[w1], %[w1], ror #8\n\t"
            "smlad  %[a3], %[xe], %[we], %[a3]\n\t"
            "smlad  %[a3], %[xw], %[w1], %[a3]\n\t"
            "cmp    %[xp], %[end]\n\t"
            "bne    1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(x), [wa] "+r"(wa),
              [wb] "+r"(wb), [xw] "=&r"(xw), [xe] "=&r"(xe), [w0] "=&r"(w0), [w1] "=&r"(w1), [we] "=&r"(we)
            : [end] "r"(end)
            : "memory", "cc");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

eq_status eq_nhwc_fc_s8_dsp(const eq_fc_params *p, const int8_t *x, const int8_t *w,
                            const int32_t *bias, const eq_rq *rq, void *scratch, int8_t *y)
{
    int32_t n, c, k, i, full, blocks, co, narrow;
    const uint32_t *w32 = (const uint32_t *)w;
    eq_status st = eq_nhwc_fc_check(p, x, w, bias, rq, y);
    (void)scratch;
    if (st != EQ_OK) {
        return st;
    }
    if (((uintptr_t)w & 3u) != 0) {
        return EQ_ERR_ARG;
    }
    k = p->in_features;
    co = p->out_features;
    narrow = p->act_min > -128 || p->act_max < 127;
    full = k >> 2;
    blocks = (k + 3) >> 2;
    for (n = 0; n < p->batch; ++n, x += k, y += co) {
        for (c = 0; c < co; c += 4) {
            /* channels c..c+3 as pairs a and b; an odd last pair is computed twice */
            const uint32_t *wa = w32 + (size_t)(c >> 1) * blocks * 2;
            const uint32_t *wb = c + 2 < co ? wa + blocks * 2 : wa;
            const int32_t cb = c + 2 < co ? c + 2 : c;
            int32_t acc[4];
            acc[0] = bias[c];
            acc[1] = bias[c + 1];
            acc[2] = bias[cb];
            acc[3] = bias[cb + 1];
            if (full > 0) {
                mm1x4(x, wa, wb, full, acc);
            }
            for (i = full * 4; i < k; ++i) {  /* the partial last block, from its bytes */
                const int8_t *wpa = (const int8_t *)(wa + full * 2), *wpb = (const int8_t *)(wb + full * 2);
                const int32_t xv = x[i], j = i - full * 4;
                acc[0] = (int32_t)((uint32_t)acc[0] + (uint32_t)(xv * wpa[j]));  /* modulo 2^32 */
                acc[1] = (int32_t)((uint32_t)acc[1] + (uint32_t)(xv * wpa[4 + j]));
                acc[2] = (int32_t)((uint32_t)acc[2] + (uint32_t)(xv * wpb[j]));
                acc[3] = (int32_t)((uint32_t)acc[3] + (uint32_t)(xv * wpb[4 + j]));
            }
            for (i = 0; i < 4 && c + i < co; ++i) {
                y[c + i] = (int8_t)eq_dsp_out(eq_dsp_rq(acc[i], &rq[c + i]), p->y_zp, p->act_min, p->act_max, narrow);
            }
        }
    }
    return EQ_OK;
}

#endif
