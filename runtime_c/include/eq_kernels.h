/* edgeq C runtime: one integer-only kernel per op and dtype (src/eq_<op>_s8.c; int4-weight
 * conv and FC in src/eq_<op>_s4.c).
 *
 * Every kernel here is the C form of the same-named op in docs/semantics.md and must give
 * the bytes of the Python integer reference (edgeq/intref/<op>.py) exactly; the tests in
 * tests/test_c_kernels.py compare them with np.array_equal.
 *
 * Conventions shared by all kernels
 * - Layout NCHW (ONNX's), batch N >= 1, row-major contiguous buffers.
 * - int8 activations in [-128, 127]; weights int8 in [-127, 127] (symmetric, so negation
 *   cannot overflow), or int4 packed two per byte for the _s4 kernels (below); bias int32; per-output-channel (mult, shift) pairs with
 *   mult in [2^30, 2^31) (or 0) and shift in [-31, 30]: the real multiplier is
 *   mult * 2^(shift - 31) (fixedpoint.quantize_multiplier).
 * - Zero points (x_zp, y_zp, ...) in [-128, 127]; act_min <= act_max within [-128, 127]
 *   (a fused Relu/Relu6/Clip lives in this clamp).
 * - Dimensions are int32_t and positive; element counts must fit int32.
 * - Return EQ_OK, or EQ_ERR_ARG / EQ_ERR_SHAPE before touching the output.
 * - Params structs hold dims, strides, pads, zero points and clamps; weights, bias and
 *   per-channel mult/shift are separate const pointers (they live in flash).
 * - Each kernel has a `size_t eq_<op>_s8_scratch_size(...)` companion giving the bytes of
 *   scratch it needs; the Python mirror used by the memory planner is
 *   edgeq.runtime_c.scratch.scratch_size(node, graph). Only conv2d and fully_connected
 *   use scratch (an optional im2col fast path; NULL selects the direct loops, same bytes).
 * - Output buffers must not overlap inputs, except where a kernel says in-place is fine.
 * - No float, no double, no division, no modulo, no malloc, no libc.
 */
#ifndef EQ_KERNELS_H
#define EQ_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "eq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQ_MAX_RANK 6      /* transpose, pad */
#define EQ_BCAST_RANK 4    /* add, mul broadcasting: shapes padded to 4-D with leading 1s */

/* ---- QConv: 2-D convolution, general --------------------------------------------------
 * x [batch, in_c, in_h, in_w], w [out_c, in_c/groups, kernel_h, kernel_w],
 * bias/mult/shift [out_c] (bias may be NULL = zeros), y [batch, out_c, out_h, out_w].
 * acc = bias[co] + sum over the group's input channels and the taps that fall inside the
 *       input of (x - x_zp) * w          (padding contributes 0, i.e. it pads with x_zp)
 * y   = clamp(y_zp + MBQM(acc, mult[co], shift[co]), act_min, act_max)
 * Groups: in_c and out_c are multiples of groups; depthwise is groups == in_c (channel
 * multiplier out_c/in_c allowed). Pads are (top, left, bottom, right), may be asymmetric.
 * out_h must equal floor((in_h + pad_top + pad_bottom - dilation_h*(kernel_h-1) - 1) /
 * stride_h) + 1 (same for w), checked without division.
 * Overflow bound: |acc| <= K * 255 * 127 + |bias| < 2^31 with K = in_c/groups * kH * kW;
 * the compiler asserts it per layer, so the int32 accumulator cannot overflow (in any
 * summation order, so the fast path may reorder).
 * scratch: NULL, or eq_conv2d_s8_scratch_size(p) = 2 * K + 4 bytes (any alignment) for
 * the im2col path: the patch (x - x_zp as int16) is gathered once per output pixel and
 * group and dotted with each output channel's contiguous weights (__smlad when
 * __ARM_FEATURE_DSP). Not shared with other kernels while the call runs. */
typedef struct {
    int32_t batch;
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t dilation_h, dilation_w;
    int32_t groups;
    int32_t x_zp, y_zp;
    int32_t act_min, act_max;
} eq_conv2d_params;

eq_status eq_conv2d_s8(const eq_conv2d_params *p, const int8_t *x, const int8_t *w,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       void *scratch, int8_t *y);
size_t eq_conv2d_s8_scratch_size(const eq_conv2d_params *p);

/* ---- QGemm: fully connected ------------------------------------------------------------
 * x [batch, in_features], w [out_features, in_features], bias/mult/shift [out_features]
 * (bias may be NULL), y [batch, out_features].
 * y[n,c] = clamp(y_zp + MBQM(bias[c] + sum_k (x[n,k] - x_zp) * w[c,k], mult[c], shift[c]))
 * Overflow bound: in_features * 255 * 127 + |bias| < 2^31 (asserted by the compiler).
 * scratch: NULL, or eq_fully_connected_s8_scratch_size(p) = 2 * in_features + 4 bytes:
 * the row x - x_zp as int16, computed once per batch row (DSP dot product on Cortex-M). */
typedef struct {
    int32_t batch, in_features, out_features;
    int32_t x_zp, y_zp;
    int32_t act_min, act_max;
} eq_fc_params;

eq_status eq_fully_connected_s8(const eq_fc_params *p, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                void *scratch, int8_t *y);
size_t eq_fully_connected_s8_scratch_size(const eq_fc_params *p);

/* ---- int4 weights: QConv / QGemm with weights of <= 4 bits ------------------------------
 * eq_conv2d_s4 and eq_fully_connected_s4 are the ops above with the same params, the same
 * bias/mult/shift/scratch and the same output bytes; only the weights differ: w holds
 * 4-bit two's complement values (the compiler writes [-7, 7], symmetric; the kernels
 * accept [-8, 7]) packed two per byte.
 * Packing: every output channel (conv) or output feature (FC) is one row of K values, in
 * the s8 kernel's order (conv: [in_c/groups, kernel_h, kernel_w], so K = in_c/groups * kH
 * * kW; FC: K = in_features). Value i of a row is in byte i >> 1 of the row, in the low
 * nibble when i is even and the high nibble when i is odd ("low nibble first"). A row
 * takes (K + 1) >> 1 bytes: an odd K leaves the last byte's high nibble as padding (0),
 * so every row starts on a byte. w has out_c * ((K + 1) >> 1) bytes.
 * Example: K = 3, row (-1, 7, -8) -> bytes 0x7F, 0x08.
 * Overflow: |w| <= 8 < 127, so the s8 bound covers these kernels (the compiler asserts
 * K * 255 * 7 + |bias| < 2^31 for int4 layers).
 * scratch: as for the s8 kernel (the s4 fast path dots the int16 patch with the packed
 * row directly, unpacking 8 values per word with SXTB16 when __ARM_FEATURE_DSP). */
eq_status eq_conv2d_s4(const eq_conv2d_params *p, const int8_t *x, const uint8_t *w,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       void *scratch, int8_t *y);
size_t eq_conv2d_s4_scratch_size(const eq_conv2d_params *p);
eq_status eq_fully_connected_s4(const eq_fc_params *p, const int8_t *x, const uint8_t *w,
                                const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                void *scratch, int8_t *y);
size_t eq_fully_connected_s4_scratch_size(const eq_fc_params *p);

/* ---- QAdd: TFLite ADD with numpy broadcasting ------------------------------------------
 * a_dims/b_dims/y_dims: 4-D shapes (lower ranks padded with leading 1s); each a_dims[i]
 * and b_dims[i] equals y_dims[i] or 1.
 * sa = MBQM((a - a_zp) << left_shift, a_mult, a_shift), sb likewise,
 * y  = clamp(y_zp + MBQM(sa + sb, y_mult, y_shift), act_min, act_max).
 * Ranges: left_shift <= 20 so |a - a_zp| << left_shift < 2^28; a_shift, b_shift <= 0
 * (multipliers <= 1/2), so |sa + sb| < 2^28 as well. In-place (y == a or y == b) is fine
 * when that input is not broadcast. */
typedef struct {
    int32_t a_dims[EQ_BCAST_RANK], b_dims[EQ_BCAST_RANK], y_dims[EQ_BCAST_RANK];
    int32_t a_zp, b_zp, y_zp;
    int32_t left_shift;
    int32_t a_mult, a_shift, b_mult, b_shift, y_mult, y_shift;
    int32_t act_min, act_max;
} eq_add_params;

eq_status eq_add_s8(const eq_add_params *p, const int8_t *a, const int8_t *b, int8_t *y);
size_t eq_add_s8_scratch_size(const eq_add_params *p);

/* ---- QMul: TFLite MUL with numpy broadcasting ------------------------------------------
 * Shapes as for eq_add_s8. y = clamp(y_zp + MBQM((a - a_zp) * (b - b_zp), y_mult, y_shift)).
 * |(a - a_zp) * (b - b_zp)| <= 255 * 255 < 2^16, so y_shift <= 15 keeps MBQM in range. */
typedef struct {
    int32_t a_dims[EQ_BCAST_RANK], b_dims[EQ_BCAST_RANK], y_dims[EQ_BCAST_RANK];
    int32_t a_zp, b_zp, y_zp;
    int32_t y_mult, y_shift;
    int32_t act_min, act_max;
} eq_mul_params;

eq_status eq_mul_s8(const eq_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y);
size_t eq_mul_s8_scratch_size(const eq_mul_params *p);

/* ---- QLut: y = table[x + 128] over `size` elements; in-place (y == x) is fine. ---------- */
eq_status eq_lut_s8(int32_t size, const int8_t *x, const int8_t *table, int8_t *y);
size_t eq_lut_s8_scratch_size(int32_t size);

/* ---- QPrelu: per-channel PRelu along axis 1 --------------------------------------------
 * x, y [batch, channels, inner] (inner = product of the dims after C).
 * d = x - x_zp; d >= 0: y = clamp(y_zp + MBQM(d, pos_mult, pos_shift), act_min, act_max)
 *               d <  0: y = clamp(y_zp + neg_sign[c] * MBQM(d, neg_mult[c], neg_shift[c]))
 * neg_mult/neg_shift/neg_sign have neg_channels entries: channels, or 1 (shared slope).
 * neg_sign in {-1, 0, 1}. |d| <= 255, so shifts up to 23 are in range. In-place is fine. */
typedef struct {
    int32_t batch, channels, inner;
    int32_t neg_channels;
    int32_t x_zp, y_zp;
    int32_t pos_mult, pos_shift;
    int32_t act_min, act_max;
} eq_prelu_params;

eq_status eq_prelu_s8(const eq_prelu_params *p, const int8_t *x, const int32_t *neg_mult,
                      const int32_t *neg_shift, const int32_t *neg_sign, int8_t *y);
size_t eq_prelu_s8_scratch_size(const eq_prelu_params *p);

/* ---- QMaxPool / QAvgPool ---------------------------------------------------------------
 * x [batch, channels, in_h, in_w], y [batch, channels, out_h, out_w]; output quantization
 * equals the input's. Window taps outside the input (padding) are ignored: they never win
 * a max and are not counted in an average (unless count_include_pad, see below). Every
 * window must hold at least one tap inside the input (EQ_ERR_SHAPE otherwise).
 * out_h/out_w: as for conv (floor mode), checked.
 * Max:  y = clamp(max over inside taps, act_min, act_max).
 * Avg:  n = number of inside taps (or kernel_h*kernel_w if count_include_pad, when the
 *       padding taps add x_zp each to the sum); y = clamp(round_half_away(sum / n)) done
 *       as round_half_away_div(sum, n, recip[n], rshift[n]) with recip/rshift arrays of
 *       kernel_h*kernel_w + 1 entries from edgeq.intref.avgpool.avgpool_recips: equal to
 *       TFLite's (sum +- n/2) / n for every |sum| <= 128 n. |sum| <= 128 * kH * kW < 2^31. */
typedef struct {
    int32_t batch, channels;
    int32_t in_h, in_w, out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t dilation_h, dilation_w;
    int32_t count_include_pad;  /* avg only; 0 or 1 */
    int32_t x_zp;               /* avg with count_include_pad only: the padding's value */
    int32_t act_min, act_max;
} eq_pool_params;

eq_status eq_maxpool_s8(const eq_pool_params *p, const int8_t *x, int8_t *y);
size_t eq_maxpool_s8_scratch_size(const eq_pool_params *p);
eq_status eq_avgpool_s8(const eq_pool_params *p, const int8_t *x, const int32_t *recip,
                        const int32_t *rshift, int8_t *y);
size_t eq_avgpool_s8_scratch_size(const eq_pool_params *p);

/* ---- QSoftmax: TFLite's int8 SOFTMAX (reference kernel) --------------------------------
 * Element (o, d, i) of x and y is at (o * depth + d) * inner + i; softmax runs over d
 * (axis last: inner = 1). Output scale 1/256, zero point -128.
 * input_mult, input_left_shift, diff_min from edgeq.intref.softmax.softmax_params(scale,
 * beta): diff = x - max_d x; taps with diff < diff_min get -128 and add nothing; the others
 * get exp of MBQM(diff, input_mult, input_left_shift) as Q5.26 (gemmlowp exp), summed in
 * Q12.19, times the reciprocal of the sum. depth <= 4095 (the Q12.19 sum fits int32). */
typedef struct {
    int32_t outer, depth, inner;
    int32_t input_mult, input_left_shift, diff_min;
} eq_softmax_params;

eq_status eq_softmax_s8(const eq_softmax_params *p, const int8_t *x, int8_t *y);
size_t eq_softmax_s8_scratch_size(const eq_softmax_params *p);

/* ---- QRequant: TFLite QUANTIZE int8 -> int8 --------------------------------------------
 * y = clamp(y_zp + MBQM(x - x_zp, mult, shift), -128, 127) over `size` elements.
 * |x - x_zp| <= 255, so shift <= 23 is in range. In-place is fine. */
typedef struct {
    int32_t size;
    int32_t x_zp, y_zp;
    int32_t mult, shift;
} eq_requant_params;

eq_status eq_requant_s8(const eq_requant_params *p, const int8_t *x, int8_t *y);
size_t eq_requant_s8_scratch_size(const eq_requant_params *p);

/* ---- QGatedState, QNarrow16: the recurrent state in int16 ------------------------------
 * The state a GRU/LSTM carries between time steps, int16 with zero point 0 (semantics.md):
 * eq_gated_state_s16 writes y = G * state + W * C with the Q0.15 gates G = sigmoid, C = tanh
 * looked up in 256-entry int16 tables of their int8 pre-activations (W: a third table, or
 * 1 - G when cand_gate is NULL); eq_narrow_s16_s8 makes the int8 copy the other layers read. */
typedef struct {
    int32_t size;
    int32_t s_mult, s_shift, u_mult, u_shift;
} eq_gated_state_params;

eq_status eq_gated_state_s16(const eq_gated_state_params *p, const int16_t *state, const int8_t *gate,
                             const int8_t *cand, const int16_t *gate_table, const int16_t *cand_table,
                             const int8_t *cand_gate, const int16_t *cand_gate_table, int16_t *y);
size_t eq_gated_state_s16_scratch_size(const eq_gated_state_params *p);

typedef struct {
    int32_t size;
    int32_t y_zp;
    int32_t mult, shift;
} eq_narrow_params;

eq_status eq_narrow_s16_s8(const eq_narrow_params *p, const int16_t *x, int8_t *y);
size_t eq_narrow_s16_s8_scratch_size(const eq_narrow_params *p);

/* ---- QConcat: copy ---------------------------------------------------------------------
 * Concatenation along one axis of n_inputs tensors with equal quantization. With
 * outer = product of the dims before the axis and inner = product of those after it,
 * input i contributes chunk[i] = dims_i[axis] * inner contiguous bytes to each of the
 * `outer` output rows, in input order. */
eq_status eq_concat_s8(int32_t n_inputs, const int8_t *const *inputs, const int32_t *chunk,
                       int32_t outer, int8_t *y);
size_t eq_concat_s8_scratch_size(int32_t n_inputs);

/* ---- QReshape: an alias -----------------------------------------------------------------
 * Reshape (Flatten, Squeeze, Unsqueeze) reinterprets the contiguous buffer, so generated
 * code should make the output the same buffer as the input and call nothing. When the
 * memory plan keeps them apart, eq_reshape_s8 copies `size` bytes (no-op if x == y). */
eq_status eq_reshape_s8(int32_t size, const int8_t *x, int8_t *y);
size_t eq_reshape_s8_scratch_size(int32_t size);

/* ---- QTranspose ------------------------------------------------------------------------
 * y has dims in_dims[perm[0]], ..., in_dims[perm[rank-1]]; y[j...] = x[j permuted back].
 * 1 <= rank <= EQ_MAX_RANK; perm is a permutation of 0..rank-1. */
typedef struct {
    int32_t rank;
    int32_t in_dims[EQ_MAX_RANK];
    int32_t perm[EQ_MAX_RANK];
} eq_transpose_params;

eq_status eq_transpose_s8(const eq_transpose_params *p, const int8_t *x, int8_t *y);
size_t eq_transpose_s8_scratch_size(const eq_transpose_params *p);

/* ---- QPad: constant padding ------------------------------------------------------------
 * y dims: pad_begin[i] + in_dims[i] + pad_end[i] (pads >= 0); the new elements get
 * `value` (the quantized pad constant, x_zp for 0.0). 1 <= rank <= EQ_MAX_RANK. */
typedef struct {
    int32_t rank;
    int32_t in_dims[EQ_MAX_RANK];
    int32_t pad_begin[EQ_MAX_RANK];
    int32_t pad_end[EQ_MAX_RANK];
    int32_t value;
} eq_pad_params;

eq_status eq_pad_s8(const eq_pad_params *p, const int8_t *x, int8_t *y);
size_t eq_pad_s8_scratch_size(const eq_pad_params *p);

/* ---- QGather: a copy at constant indices -------------------------------------------------
 * x viewed as [outer, in_len, inner] (the gathered axis in the middle), y as
 * [outer, out_len, inner]: y[o, k, :] = x[o, indices[k], :], 0 <= indices[k] < in_len
 * (repeats allowed). Slice, Split, reflect / edge padding and nearest Resize run as this.
 * y must not overlap x. */
typedef struct {
    int32_t outer;    /* product of the dims before the axis */
    int32_t in_len;   /* x's size along the axis */
    int32_t out_len;  /* number of indices: y's size along the axis */
    int32_t inner;    /* product of the dims after the axis */
} eq_gather_params;

eq_status eq_gather_s8(const eq_gather_params *p, const int32_t *indices, const int8_t *x, int8_t *y);
size_t eq_gather_s8_scratch_size(const eq_gather_params *p);

/* ---- QResizeBilinear: bilinear resize of H and W ----------------------------------------
 * x [batch, channels, in_h, in_w] -> y [batch, channels, out_h, out_w]. y_table holds
 * out_h triples (lo, hi, frac), x_table out_w: input row / column lo and hi (= lo or
 * lo + 1, < in_len) and hi's weight frac in [0, EQ_RESIZE_ONE) (lo's: EQ_RESIZE_ONE - frac).
 *   acc = (ONE - fy) * ((ONE - fx) * x[lo_y][lo_x] + fx * x[lo_y][hi_x])
 *       +        fy  * ((ONE - fx) * x[hi_y][lo_x] + fx * x[hi_y][hi_x])
 *   y   = rounding_divide_by_pot(acc, 20)      (TFLite's ResizeBilinearInteger; same params)
 * y must not overlap x. */
#define EQ_RESIZE_ONE 1024
typedef struct {
    int32_t batch, channels;
    int32_t in_h, in_w;
    int32_t out_h, out_w;
} eq_resize_params;

eq_status eq_resize_bilinear_s8(const eq_resize_params *p, const int32_t *y_table,
                                const int32_t *x_table, const int8_t *x, int8_t *y);
size_t eq_resize_bilinear_s8_scratch_size(const eq_resize_params *p);

/* ---- QMatMul: TFLite BATCH_MATMUL -----------------------------------------------------
 * For each of `batch` products: a [m, k] (at a + t * a_batch_stride) times b [k, n] (at
 * b + t * b_batch_stride); a stride of 0 broadcasts one matrix over the batch. y [batch, m, n]:
 *   y = clamp(y_zp + MBQM(sum_k (a - a_zp)(b - b_zp), y_mult, y_shift), act_min, act_max)
 * The compiler proves k * 255^2 << max(y_shift, 0) < 2^31. y must not overlap a or b. */
typedef struct {
    int32_t batch, m, k, n;
    int32_t a_batch_stride, b_batch_stride;  /* elements; 0: the same matrix for every t */
    int32_t a_zp, b_zp, y_zp;
    int32_t y_mult, y_shift;
    int32_t act_min, act_max;
} eq_matmul_params;

eq_status eq_matmul_s8(const eq_matmul_params *p, const int8_t *a, const int8_t *b, int8_t *y);
size_t eq_matmul_s8_scratch_size(const eq_matmul_params *p);

#ifdef __cplusplus
}
#endif

#endif /* EQ_KERNELS_H */
