/* QMaxPool, int8, NHWC, Cortex-M DSP: four channels per word; per tap SSUB8 sets the
 * per-byte GE flags where x >= max and SEL keeps the larger bytes, then the act clamp the
 * same way and one word store. Channels past the last multiple of 4 run one by one. */
#include "eq_nhwc_check.h"
#include "eq_nhwc_dsp.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1

size_t eq_nhwc_maxpool_s8_dsp_scratch_size(const eq_pool_params *p)
{
    (void)p;
    return 0;
}

/* Per-byte signed max / min of four int8 lanes: SSUB8 sets GE[i] where a[i] >= b[i], SEL
 * takes a[i] there and b[i] elsewhere. */
static inline uint32_t max4(uint32_t a, uint32_t b)
{
    uint32_t r;  /* one statement: the GE flags must not be separated from their SEL */
    __asm__("ssub8  %0, %1, %2\n\tsel    %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}

static inline uint32_t min4(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub8  %0, %1, %2\n\tsel    %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}

eq_status eq_nhwc_maxpool_s8_dsp(const eq_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t n, oh, ow, r0, r1, c0, c1, r, c, ch, C, C4;
    uint32_t lo4, hi4;
    eq_status st;
    if (p == NULL || x == NULL || y == NULL) {
        return EQ_ERR_ARG;
    }
    st = eq_nhwc_pool_check(p);
    if (st != EQ_OK) {
        return st;
    }
    C = p->channels;
    C4 = C & ~3;
    lo4 = 0x01010101u * (uint8_t)p->act_min;
    hi4 = 0x01010101u * (uint8_t)p->act_max;
    for (n = 0; n < p->batch; ++n) {
        const int8_t *x_n = x + (size_t)n * p->in_h * p->in_w * C;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            eq_tap_range(ih0, p->kernel_h, p->dilation_h, p->in_h, &r0, &r1);
            for (ow = 0; ow < p->out_w; ++ow, y += C) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int8_t *first;
                const int32_t row_step = p->dilation_h * p->in_w * C, col_step = p->dilation_w * C;
                eq_tap_range(iw0, p->kernel_w, p->dilation_w, p->in_w, &c0, &c1);
                first = x_n + ((size_t)(ih0 + r0 * p->dilation_h) * p->in_w + iw0 + c0 * p->dilation_w) * C;
                for (ch = 0; ch < C4; ch += 4) {
                    const int8_t *rp = first + ch;
                    uint32_t m = 0x80808080u;  /* every lane at -128: any tap wins or ties */
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            m = max4(eq_ld32(tp), m);
                        }
                    }
                    m = min4(max4(m, lo4), hi4);
                    __builtin_memcpy(y + ch, &m, 4);
                }
                for (ch = C4; ch < C; ++ch) {
                    const int8_t *rp = first + ch;
                    int32_t best = -128;
                    for (r = r0; r < r1; ++r, rp += row_step) {
                        const int8_t *tp = rp;
                        for (c = c0; c < c1; ++c, tp += col_step) {
                            best = *tp > best ? *tp : best;
                        }
                    }
                    y[ch] = (int8_t)clamp(best, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}

#endif
