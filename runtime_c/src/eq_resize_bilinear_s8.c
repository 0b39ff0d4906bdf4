/* QResizeBilinear, int8: per output pixel, four taps with 10-bit weights from the row and
 * column tables (lo, hi, frac), summed in int32 (|acc| <= 128 * 2^20) and rounded half away
 * from zero by 2^20. Raw int8 values: the weights sum to 2^20, so the zero point passes. */
#include "eq_internal.h"

size_t eq_resize_bilinear_s8_scratch_size(const eq_resize_params *p)
{
    (void)p;
    return 0;
}

static int32_t table_ok(const int32_t *t, int32_t n, int32_t in_len)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t lo = t[3 * i], hi = t[3 * i + 1], frac = t[3 * i + 2];
        if (lo < 0 || hi < lo || hi > lo + 1 || hi >= in_len || frac < 0 || frac >= EQ_RESIZE_ONE) {
            return 0;
        }
    }
    return 1;
}

eq_status eq_resize_bilinear_s8(const eq_resize_params *p, const int32_t *y_table,
                                const int32_t *x_table, const int8_t *x, int8_t *y)
{
    int32_t plane, r, c;
    if (p == NULL || y_table == NULL || x_table == NULL || x == NULL || y == NULL ||
        p->batch < 1 || p->channels < 1 || p->in_h < 1 || p->in_w < 1 || p->out_h < 1 || p->out_w < 1) {
        return EQ_ERR_ARG;
    }
    if (!table_ok(y_table, p->out_h, p->in_h) || !table_ok(x_table, p->out_w, p->in_w)) {
        return EQ_ERR_ARG;
    }
    for (plane = 0; plane < p->batch * p->channels; ++plane) {
        const int8_t *src = x + (size_t)plane * (size_t)p->in_h * (size_t)p->in_w;
        for (r = 0; r < p->out_h; ++r) {
            const int8_t *row_lo = src + (size_t)y_table[3 * r] * (size_t)p->in_w;
            const int8_t *row_hi = src + (size_t)y_table[3 * r + 1] * (size_t)p->in_w;
            const int32_t fy = y_table[3 * r + 2];
            for (c = 0; c < p->out_w; ++c) {
                const int32_t lo = x_table[3 * c], hi = x_table[3 * c + 1], fx = x_table[3 * c + 2];
                const int32_t top = (EQ_RESIZE_ONE - fx) * row_lo[lo] + fx * row_lo[hi];
                const int32_t bottom = (EQ_RESIZE_ONE - fx) * row_hi[lo] + fx * row_hi[hi];
                const int32_t acc = (EQ_RESIZE_ONE - fy) * top + fy * bottom;
                *y++ = (int8_t)rounding_divide_by_pot(acc, 20);
            }
        }
    }
    return EQ_OK;
}
