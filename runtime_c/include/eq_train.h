/* edgeq C runtime, training: the backward kernels and the in-place update of an integer
 * training step (docs/training.md), the C form of edgeq/training/ (the golden semantics).
 * Every kernel must give the bytes of the Python reference; tests/test_c_train_kernels.py
 * compares them with np.array_equal.
 *
 * Conventions (besides eq_kernels.h's: NCHW, no float, no division, no malloc, EQ_OK or
 * EQ_ERR_ARG / EQ_ERR_SHAPE before any output is written)
 * - A gradient is an int16 mantissa array and an int32 exponent e: real = m * 2^e, with
 *   |m| <= 2^(bits - 2) after eq_train_normalize (bits = 16: 16384; bits = 8: 64, still
 *   stored as int16 here).
 * - Backward kernels write exact int32 accumulators `acc` (zeroed by the kernel); the caller
 *   then normalizes them into the int16 gradient (eq_train_normalize may run in place on
 *   the accumulator buffer: m[i] is written after acc[i] is read, and int16 element i never
 *   overlaps an int32 element above i).
 * - Stochastic rounding draws from eq_draws: draw(k) = eq_mix32(seed + k), the counter k
 *   advancing by one per element of the array being rounded, row-major, used or not.
 * - The per-channel (mult, shift) tables come from edgeq.training's plan (each rule's prepare):
 *   gmult/gshift (input-gradient prescale), pmult/pshift (average-pool shares, indexed by
 *   tap count), bmult/bshift and wmult/wshift (the QAS update multipliers).
 * - Scratch: none. Each kernel with a params struct has an eq_train_<kernel>_scratch_size
 *   companion (0 bytes, like eq_softmax_s8's); the int32 accumulators are the caller's output
 *   buffer (4 bytes per input element), the memory plan's "gradient peak" (docs/training.md).
 * - Overflow: each kernel's int32 bound is proven by the plan at compile time (docs/training.md,
 *   "Overflow proofs"); the kernels do not re-check it.
 */
#ifndef EQ_TRAIN_H
#define EQ_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "eq_fixedpoint.h"
#include "eq_kernels.h"
#include "eq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQ_TRAIN_STEP_LIMIT ((int32_t)1 << 30)

/* ---- pseudo-random draws and rounding --------------------------------------------------- */

typedef struct {
    uint32_t seed;
    uint32_t counter;   /* carried across steps */
} eq_draws;

/* lowbias32: a bijection on uint32 with good avalanche, integer multiply only. */
static inline uint32_t eq_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline uint32_t eq_draw(const eq_draws *d, uint32_t k)
{
    return eq_mix32(d->seed + d->counter + k);
}

/* x / 2^r to an integer, 1 <= r: nearest (round half away from zero) when draw is NULL,
 * else floor((x + u) / 2^r) with u = *draw scaled to r bits; r >= 63 gives 0. |x| < 2^62. */
static inline int64_t eq_round_shift64(int64_t x, int32_t r, const uint32_t *draw)
{
    if (r >= 63) {
        return 0;
    }
    if (draw == NULL) {
        const int64_t mask = ((int64_t)1 << r) - 1;
        const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
        return eq_asr64(x, r) + ((x & mask) > threshold ? 1 : 0);
    }
    return eq_asr64(x + (r <= 32 ? (int64_t)(*draw >> (32 - r)) : ((int64_t)*draw << (r - 32))), r);
}

/* Bits of v (0 for 0). */
static inline int32_t eq_bit_length32(uint32_t v)
{
    return 32 - count_leading_zeros32(v);
}

/* The QAS step round(acc * mult * 2^(shift - 31 + e)), saturated to +-2^30 (draw as in
 * eq_round_shift64). */
static inline int32_t eq_train_step(int32_t acc, int32_t mult, int32_t shift, int32_t e, const uint32_t *draw)
{
    const int64_t p = (int64_t)acc * mult;
    const int64_t r = 31 - (int64_t)shift - e;
    int64_t out;
    if (r > 0) {
        out = eq_round_shift64(p, (int32_t)(r > 63 ? 63 : r), draw);
    } else {
        const int32_t left = (int32_t)(-r > 62 ? 62 : -r);
        const int64_t mag = p < 0 ? -p : p;
        if (mag > (int64_t)(EQ_TRAIN_STEP_LIMIT >> (left < 30 ? left : 30))) {
            out = p < 0 ? -(int64_t)EQ_TRAIN_STEP_LIMIT : EQ_TRAIN_STEP_LIMIT;
        } else {
            out = p < 0 ? -(mag << left) : (mag << left);
        }
    }
    return (int32_t)(out > EQ_TRAIN_STEP_LIMIT ? EQ_TRAIN_STEP_LIMIT
                     : (out < -EQ_TRAIN_STEP_LIMIT ? -EQ_TRAIN_STEP_LIMIT : out));
}

/* ---- gradients ---------------------------------------------------------------------------- */

/* acc[n] (real acc * 2^e_in) -> m[n] with |m| <= 2^(bits-2), *e_out. r = bit_length(peak - 1)
 * - (bits - 2): r > 0 rounds (stochastic: n draws), r <= 0 shifts left exactly, an all-zero
 * acc keeps e_in. bits is 8 or 16. m may alias acc. */
eq_status eq_train_normalize(const int32_t *acc, int32_t n, int32_t e_in, int32_t bits, int32_t stochastic,
                             eq_draws *draws, int16_t *m, int32_t *e_out);

/* acc[i] = m[i] (int16 -> int32, for a rule that passes a gradient on and normalizes it
 * again, e.g. QAdd). acc may alias m. */
eq_status eq_train_widen(const int16_t *m, int32_t n, int32_t *acc);

/* The gradient of a tensor read by two nodes (edgeq.training.gradient.add): e = max(ea, eb);
 * the side with the smaller exponent is rounded right by the difference (nearest, or
 * stochastic with n draws, row-major); acc[i] = the exact int32 sum (|a|, |b| <= 2^14), *e_out
 * = e; normalize next. acc may alias b. */
eq_status eq_train_grad_sum(const int16_t *a, int32_t ea, const int16_t *b, int32_t eb, int32_t n,
                            int32_t stochastic, eq_draws *draws, int32_t *acc, int32_t *e_out);

/* m[i] = 0 where the int8 output y[i] is at a masked clamp bound: y <= lo (when use_lo) or
 * y >= hi (when use_hi). In place. */
eq_status eq_train_mask(int16_t *m, const int8_t *y, int32_t n, int32_t use_lo, int32_t lo,
                        int32_t use_hi, int32_t hi);

/* Softmax cross-entropy gradient of one row of int8 logits: acc = p * 2^14 - 2^14 [i ==
 * label] (exponent -14; normalize next). The softmax constants are QSoftmax's for beta = 1
 * (edgeq.training.loss.loss_params). classes <= 4095. */
eq_status eq_train_ce_grad_s8(const int8_t *logits, int32_t classes, int32_t label, int32_t input_mult,
                              int32_t input_left_shift, int32_t diff_min, int32_t *acc);

/* ---- backward of QConv / QGemm / QAvgPool: input gradients ------------------------------- */

/* acc[n, ci, ih, iw] = sum over (co in ci's group, taps reaching ih, iw) of
 * MBQM(m[n, co, oh, ow], gmult[co], gshift[co]) * w[co, ci % cig, kh, kw]
 * (the transposed conv of the prescaled gradient; p is the forward's params). */
eq_status eq_train_conv2d_input_grad(const eq_conv2d_params *p, const int16_t *m, const int8_t *w,
                                     const int32_t *gmult, const int32_t *gshift, int32_t *acc);
size_t eq_train_conv2d_input_grad_scratch_size(const eq_conv2d_params *p);

/* acc[n, k] = sum over c of MBQM(m[n, c], gmult[c], gshift[c]) * w[c, k]. */
eq_status eq_train_fc_input_grad(const eq_fc_params *p, const int16_t *m, const int8_t *w,
                                 const int32_t *gmult, const int32_t *gshift, int32_t *acc);
size_t eq_train_fc_input_grad_scratch_size(const eq_fc_params *p);

/* acc[n, c, i] = sum over windows o holding i of MBQM(m[n, c, o], pmult[n_o], pshift[n_o]),
 * n_o the window's tap count (kH*kW with count_include_pad); pmult/pshift have kH*kW + 1
 * entries, index = count. */
eq_status eq_train_avgpool_input_grad(const eq_pool_params *p, const int16_t *m, const int32_t *pmult,
                                      const int32_t *pshift, int32_t *acc);
size_t eq_train_avgpool_input_grad_scratch_size(const eq_pool_params *p);

/* acc[n, c, i] = sum over windows o whose winning tap is i of m[n, c, o]: the max-pool
 * gradient. A window's winner is its largest x among the taps inside the input, the first in
 * kernel row-major order among equals (padding never wins); x is the forward's input. */
eq_status eq_train_maxpool_input_grad(const eq_pool_params *p, const int8_t *x, const int16_t *m, int32_t *acc);
size_t eq_train_maxpool_input_grad_scratch_size(const eq_pool_params *p);

/* ---- data movement and broadcasting: exact, the exponent passes on unchanged ------------- */

#define EQ_TRAIN_MAX_RANK 8

/* out[i] = m[offset + sum over axes d of index_d(i) * stride[d]], i running row-major over
 * shape[rank]: the input gradient of QTranspose (stride = the output's strides permuted back),
 * QPad (the output's strides, offset = the leading pads: the crop) and QConcat (the output's
 * strides, offset = the input's start on the axis: the split). rank <= EQ_TRAIN_MAX_RANK. */
eq_status eq_train_gather_grad(const int16_t *m, int32_t rank, const int32_t *shape, const int32_t *stride,
                               int32_t offset, int16_t *out);

/* acc[j] = sum over the output elements i that read input element j of m[i]: the gradient of
 * a broadcast QAdd input. out_shape is the output's, in_stride the input's strides aligned to
 * it (0 on a broadcast axis); acc has in_count elements. |acc| <= terms * 2^14 < 2^31 (plan). */
eq_status eq_train_unbroadcast(const int16_t *m, int32_t rank, const int32_t *out_shape, const int32_t *in_stride,
                               int32_t in_count, int32_t *acc);

/* ---- updates (in place, right after the gradient) ---------------------------------------- */

/* Momentum (optional): V = round_shift(V * mult, 31 - shift) + step (nearest), saturated to
 * +-2^30, and the parameter moves by V instead of step. (mult, shift) = quantize_multiplier(mu),
 * 0 <= mu < 1; velocity has one int32 per parameter (the whole tensor, unselected ones stay 0).
 * A NULL momentum is plain SGD. */
typedef struct {
    int32_t mult;
    int32_t shift;
    int32_t *velocity;
} eq_train_momentum;

static inline int32_t eq_train_momentum_step(const eq_train_momentum *mu, size_t i, int32_t step)
{
    int64_t v;
    if (mu == NULL) {
        return step;
    }
    v = eq_round_shift64((int64_t)mu->velocity[i] * mu->mult, 31 - mu->shift, NULL) + step;
    v = v > EQ_TRAIN_STEP_LIMIT ? EQ_TRAIN_STEP_LIMIT : (v < -EQ_TRAIN_STEP_LIMIT ? -EQ_TRAIN_STEP_LIMIT : v);
    mu->velocity[i] = (int32_t)v;
    return (int32_t)v;
}

/* Bsum[c] = sum over batch and positions of m[n, c, pos] (m already masked);
 * bias[c] = clamp(bias[c] - step(Bsum[c], bmult[c], bshift[c], e), -limit, limit), nearest
 * (with momentum: minus the velocity instead of the step). */
eq_status eq_train_bias_update(int32_t batch, int32_t channels, int32_t positions, const int16_t *m,
                               int32_t e, const int32_t *bmult, const int32_t *bshift, int32_t limit,
                               const eq_train_momentum *mu, int32_t *bias);

/* The weight update of a trained layer. */
typedef struct {
    int32_t fit;            /* the plan's wfit: m is rounded right by it before the sums */
    int32_t stochastic_fit; /* that rounding is stochastic (the plan's gradient rounding) */
    int32_t stochastic;     /* the step is rounded stochastically (weight_update "stochastic") */
    int32_t frac_bits;      /* 8: int8 weight + int8 residual (master), 0: int8 only */
    int32_t qmax;           /* 127 (int8), 7 (int4 values) */
} eq_train_weight_params;

/* For every weight whose input channel is selected (selected_in[ci] != 0; NULL: all):
 * A = sum over batch and positions of (x - x_zp) * round_shift(m, fit) (padding adds 0),
 * step = eq_train_step(A, wmult[co], wshift[co], e + fit, draw), then the master update
 * M = clamp(w * 2^F + residual - step), w = (M + 2^(F-1)) >> F, residual = M - w * 2^F
 * (F = 0: w = clamp(w - step, -qmax, qmax), residual unused, may be NULL).
 * Draws: the fit rounding takes one per element of m, then the step one per element of w
 * (flat index, selected or not), when the respective rounding is stochastic. With momentum
 * (mu not NULL) the weight moves by its velocity (eq_train_momentum_step) instead. */
eq_status eq_train_conv2d_weight_update(const eq_conv2d_params *p, const eq_train_weight_params *u,
                                        const int8_t *x, const int16_t *m, int32_t e,
                                        const int32_t *wmult, const int32_t *wshift,
                                        const uint8_t *selected_in, eq_draws *draws,
                                        const eq_train_momentum *mu, int8_t *w, int8_t *residual);
size_t eq_train_conv2d_weight_update_scratch_size(const eq_conv2d_params *p);
eq_status eq_train_fc_weight_update(const eq_fc_params *p, const eq_train_weight_params *u,
                                    const int8_t *x, const int16_t *m, int32_t e,
                                    const int32_t *wmult, const int32_t *wshift,
                                    const uint8_t *selected_in, eq_draws *draws,
                                    const eq_train_momentum *mu, int8_t *w, int8_t *residual);
size_t eq_train_fc_weight_update_scratch_size(const eq_fc_params *p);

#ifdef __cplusplus
}
#endif

#endif /* EQ_TRAIN_H */
