/* edgeq C runtime, channels-last (NHWC) kernels with compile-time packed weights.
 *
 * The same ops and the same bytes as eq_kernels.h (docs/semantics.md; the integer reference
 * edgeq/intref is NCHW: the tests transpose), laid out for speed on Cortex-M:
 * - Activations NHWC: x[n][h][w][c], a pixel's channels contiguous. A 1-D conv ([N, C, L]
 *   in the graph) is H = 1, W = L. FC rows are [batch][features].
 * - Weights, biases and requantization constants are packed at compile time by
 *   edgeq.runtime_c.packing (Python), in the order each kernel reads fastest; the format
 *   depends on the ISA variant (below), so generated code packs for the variant it calls.
 * - Every op has three variants, one file each: _c (portable C99: the fallback on any CPU
 *   and a second oracle), _dsp (Cortex-M4/M7/M33, __ARM_FEATURE_DSP: SXTB16/SMLAD) and _mve
 *   (Cortex-M55, __ARM_FEATURE_MVE: Helium). A variant's file compiles to nothing on a CPU
 *   without its extension, so calling it there is a link error, never wrong code.
 *   EQ_NHWC(eq_nhwc_pointwise_s8) names the best variant of the CPU being compiled for;
 *   edgeq.runtime_c.packing.isa_for_cpu gives the same choice in Python.
 * - Params structs are eq_kernels.h's (eq_conv2d_params, eq_fc_params, eq_pool_params):
 *   their fields are layout-free; eq_nhwc_add_params is new. Dims, zero points and clamps as
 *   in eq_kernels.h; every kernel checks them and returns EQ_ERR_ARG / EQ_ERR_SHAPE before
 *   writing, EQ_OK otherwise.
 * - Each kernel has a `size_t <kernel>_scratch_size(params)` companion (bytes, any
 *   alignment: the kernels align the pointer); scratch may be NULL only when it returns 0.
 *   The Python mirror is edgeq.runtime_c.packing.scratch_bytes (the QEMU tests compare).
 * - No float, no division, no modulo, no malloc, no libc.
 *
 * Shape specialisation: the pointwise and depthwise 3x3 kernels are written as
 * always-inline bodies in eq_nhwc_pointwise_body.h / eq_nhwc_dw3x3_body.h. The .c files call
 * them with run-time params; generated code may include the body header and call it with a
 * pointer to a `static const` params struct, so the compiler folds the shape into the
 * loops (bounds, strides, unrolling, dropped clamps). Same bytes either way.
 *
 * ---- Requantization (all variants) -----------------------------------------------------
 * y = clamp(y_zp + MBQM(acc, mult, shift), act_min, act_max), bit-exact with
 * multiply_by_quantized_multiplier (TFLite's double rounding), from constants packed per
 * output channel (packing.pack_requant):
 *   eq_rq {mult, rs, c_lo, c_hi}
 *   shift <= -1 (R = -shift): rs = R - 1, (c_hi:c_lo) = 2^30 + 2^(30+R) (64-bit), and
 *     y = (int32)((c + acc * mult - [acc < 0] * 2^31) >> 32) >> rs
 *   shift >= 0: rs = -1, c_hi = shift, and y = SRDHM(acc << shift, mult) directly.
 * Why the first form is exact: SRDHM(a, m) = floor((a m + 2^30) / 2^31) (gemmlowp's
 * nudge rounds ties of negative products toward zero), and RDBP(h, R) = floor((h + 2^(R-1)
 * - [h < 0]) / 2^R); nested floors by powers of two merge into one floor of the 64-bit sum,
 * and [h < 0] may be replaced by [acc < 0]: they differ only when -2^30 <= acc*mult < 0,
 * where both forms give 0. |acc * mult| < 2^62 and c < 2^62, so the sum fits int64.
 * On Cortex-M the first form is AND, SUBS, SBC, SMLAL, ASR: 5 instructions per output.
 *
 * ---- Accumulator (conv, pointwise, depthwise, fc) --------------------------------------
 * The kernels accumulate raw int8 activations against the weights onto a folded bias:
 *   bias_eff[co] = bias[co] - x_zp * sum_k w[co][k]  modulo 2^32   (packing.fold_bias)
 * and a padded tap contributes x * w with x = x_zp (which is the semantics' "padding
 * contributes 0": (x_zp - x_zp) * w). So bias_eff + sum x * w = bias + sum (x - x_zp) * w,
 * the semantics' accumulator, which the compiler proves is inside int32 (|bias| +
 * K * 255 * 127 < 2^31). Partial sums need not be: a channel with a huge bias (the
 * quantizer saturates the bias of a channel whose real bias dwarfs its scale) can leave
 * int32 on the way. So the kernels add modulo 2^32 (uint32_t in C; SMLAD, SMLABB, MLA and
 * VMLADAVA wrap) and the final sum, being in range, is exact.
 */
#ifndef EQ_KERNELS_NHWC_H
#define EQ_KERNELS_NHWC_H

#include <stddef.h>
#include <stdint.h>

#include "eq_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per output channel requantization constants of the _c and _dsp variants (see above).
 * 16 bytes, read with LDRD. */
typedef struct {
    int32_t mult;   /* m in [2^30, 2^31), or 0 */
    int32_t rs;     /* R - 1 in [0, 30] for shift = -R <= -1 (and for mult 0); -1 for shift >= 0 */
    uint32_t c_lo;  /* low word of 2^30 + 2^(30+R); unused when rs == -1 */
    int32_t c_hi;   /* high word of 2^30 + 2^(30+R); the left shift (0..30) when rs == -1 */
} eq_rq;

/* The _mve variants' constants, one block per 4 output channels (the vector lanes):
 * y = VRSHL(VQRDMULH(acc << left, mult) + fixup, neg_r) with neg_r = min(shift, 0),
 * left = max(shift, 0) and fixup = -1 where the product is negative and neg_r < 0 (TFLite's
 * rounding divide rounds ties away from zero, VRSHL rounds them up). packing.pack_requant4. */
typedef struct {
    int32_t mult[4];
    int32_t neg_r[4];
    int32_t left[4];
} eq_rq4;

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define EQ_NHWC_ISA _mve
#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1
#define EQ_NHWC_ISA _dsp
#else
#define EQ_NHWC_ISA _c
#endif
#define EQ_NHWC_CAT_(a, b) a##b
#define EQ_NHWC_CAT(a, b) EQ_NHWC_CAT_(a, b)
/* EQ_NHWC(eq_nhwc_fc_s8)(...) calls eq_nhwc_fc_s8_mve / _dsp / _c, whichever this CPU has
 * (the constants must then be packed for that variant: packing.isa_for_cpu). */
#define EQ_NHWC(kernel) EQ_NHWC_CAT(kernel, EQ_NHWC_ISA)

/* Every kernel: <name>_c, <name>_dsp (eq_rq constants) and <name>_mve (eq_rq4 blocks), each
 * with its _scratch_size companion. */
#define EQ_NHWC_DECLARE(name, ptype, args_before_rq, args_after_rq)                          \
    eq_status name##_c(const ptype *p, args_before_rq, const eq_rq *rq, args_after_rq);       \
    eq_status name##_dsp(const ptype *p, args_before_rq, const eq_rq *rq, args_after_rq);     \
    eq_status name##_mve(const ptype *p, args_before_rq, const eq_rq4 *rq, args_after_rq);    \
    size_t name##_c_scratch_size(const ptype *p);                                             \
    size_t name##_dsp_scratch_size(const ptype *p);                                           \
    size_t name##_mve_scratch_size(const ptype *p)
#define EQ_NHWC_ARGS(...) __VA_ARGS__

/* ---- Conv, general (groups, dilation, asymmetric pads) -----------------------------------
 * x [batch, in_h, in_w, in_c], y [batch, out_h, out_w, out_c]; K = in_c/groups * kH * kW,
 * ordered (kh, kw, ci) (TFLite's OHWI). w, bias, rq from packing.pack_conv(isa):
 *   _c:   w [out_c][K] int8; bias_eff [out_c]; rq eq_rq [out_c].
 *   _dsp: per group, channel pairs (an odd group gets a zero row): for pair j, 4-column
 *         block b: bytes [8 (j K4/4 + b) ..] = w[2j][4b..4b+3], w[2j+1][4b..4b+3]
 *         (K4 = K rounded up to 4, zero padded); bias_eff, rq padded likewise.
 *   _mve: per group, blocks of 4 channels (zero rows pad a group to 4): for block j and
 *         16-column block b, 64 bytes = the 16 columns of its 4 channels, one after the other
 *         (K16 = K rounded up to 16, zero padded); bias_eff padded likewise; rq eq_rq4 blocks.
 * Weights word aligned for _dsp and _mve. scratch: _c 0; _dsp: the im2col patches of two
 * output pixels as int16 and their accumulators, 4 K4 + 16 ceil(out_c/groups / 2) + 4
 * bytes; _mve: two int8 patches, 2 K16 + 4 bytes. */
EQ_NHWC_DECLARE(eq_nhwc_conv_s8, eq_conv2d_params, EQ_NHWC_ARGS(const int8_t *x, const int8_t *w, const int32_t *bias),
                EQ_NHWC_ARGS(void *scratch, int8_t *y));

/* ---- Pointwise: 1x1 conv, groups == 1, no padding, any stride (a matrix multiply) ------
 * Packing, bias and rq as for the general conv (pack_conv with K = in_c).
 * scratch: _c 0; _dsp 4 K4 + 16 ceil(out_c / 2) + 4 (two pixels as int16, their
 * accumulators); _mve 0. */
EQ_NHWC_DECLARE(eq_nhwc_pointwise_s8, eq_conv2d_params,
                EQ_NHWC_ARGS(const int8_t *x, const int8_t *w, const int32_t *bias), EQ_NHWC_ARGS(void *scratch, int8_t *y));

/* ---- Depthwise: groups == in_c, out_c = in_c * multiplier ------------------------------
 * Output channel co reads input channel co / multiplier. w, bias, rq from
 * packing.pack_depthwise(isa):
 *   _c:   w [kH*kW][out_c] int8 (tap-major, channels contiguous like the input).
 *   _dsp: per 4 output channels (out_c rounded up to 4) and tap, two words of int16
 *         pairs (w[c0], w[c2]), (w[c1], w[c3]) (low half first): what SXTB16 makes of 4
 *         input channels; bias_eff, rq padded to the same channel count.
 *   _mve: per 16 output channels (out_c rounded up to 16): the taps' 16 weights (int8);
 *         bias_eff and rq of the block in the lane order packing.DW_MVE_LANES.
 * scratch: _c 0; _dsp kH*kW pointers + in_c rounded up to 4 + 4; _mve in_c rounded up
 * to 16 + 4 (a row of x_zp that padded taps read). */
EQ_NHWC_DECLARE(eq_nhwc_depthwise_s8, eq_conv2d_params,
                EQ_NHWC_ARGS(const int8_t *x, const int8_t *w, const int32_t *bias), EQ_NHWC_ARGS(void *scratch, int8_t *y));

/* ---- Depthwise 3x3: multiplier 1, dilation 1, stride 1 or 2, pads <= 1 -----------------
 * The common case, specialised; same packing as eq_nhwc_depthwise_s8. scratch: in_c rounded
 * up to 4 (_dsp) or 16 (_mve) + 4 bytes (the x_zp row); _c 0. */
EQ_NHWC_DECLARE(eq_nhwc_dw3x3_s8, eq_conv2d_params,
                EQ_NHWC_ARGS(const int8_t *x, const int8_t *w, const int32_t *bias), EQ_NHWC_ARGS(void *scratch, int8_t *y));

/* ---- Fully connected: x [batch][in_features], y [batch][out_features] -------------------
 * Packing as pack_conv with K = in_features (packing.pack_fc). scratch: 0 (every variant). */
EQ_NHWC_DECLARE(eq_nhwc_fc_s8, eq_fc_params, EQ_NHWC_ARGS(const int8_t *x, const int8_t *w, const int32_t *bias),
                EQ_NHWC_ARGS(void *scratch, int8_t *y));

/* ---- Add: TFLite ADD of two same-shape tensors (any layout), in-place allowed -------------
 * TFLite's two input rescalings depend on one int8 each, so they are tables made at compile
 * time (packing.pack_add): table_a[q + 128] = MBQM((q - a_zp) << left_shift, a_mult,
 * a_shift), likewise b. y = clamp(y_zp + MBQM(table_a[a] + table_b[b], y_mult, y_shift))
 * with rq = packing.pack_add_rq (one eq_rq, or one eq_rq4 of four equal lanes): one
 * requantization per element instead of three. |table| < 2^28 (semantics: left_shift <= 20,
 * multipliers <= 1/2), so the sum fits. Broadcasting adds stay with eq_add_s8 (layout-free
 * given NHWC dims). scratch: none. */
typedef struct {
    int32_t size;
    int32_t y_zp;
    int32_t act_min, act_max;
} eq_nhwc_add_params;

eq_status eq_nhwc_add_s8_c(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b, const int32_t *table_a,
                           const int32_t *table_b, const eq_rq *rq, int8_t *y);
eq_status eq_nhwc_add_s8_dsp(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b, const int32_t *table_a,
                             const int32_t *table_b, const eq_rq *rq, int8_t *y);
eq_status eq_nhwc_add_s8_mve(const eq_nhwc_add_params *p, const int8_t *a, const int8_t *b, const int32_t *table_a,
                             const int32_t *table_b, const eq_rq4 *rq, int8_t *y);
size_t eq_nhwc_add_s8_c_scratch_size(const eq_nhwc_add_params *p);
size_t eq_nhwc_add_s8_dsp_scratch_size(const eq_nhwc_add_params *p);
size_t eq_nhwc_add_s8_mve_scratch_size(const eq_nhwc_add_params *p);

/* ---- Pooling: x [batch, in_h, in_w, channels] -> y [batch, out_h, out_w, channels] -------
 * eq_pool_params and semantics as eq_maxpool_s8 / eq_avgpool_s8 (recip/rshift from
 * avgpool_recips; kH, kW <= 255). No packing. scratch: 0 except avg _mve: 4 * channels
 * rounded up to 16 + 4 (int32 sums of one output pixel). */
#define EQ_NHWC_POOL_DECLARE(name, ...)                                                      \
    eq_status name##_c(const eq_pool_params *p, __VA_ARGS__);                                \
    eq_status name##_dsp(const eq_pool_params *p, __VA_ARGS__);                              \
    eq_status name##_mve(const eq_pool_params *p, __VA_ARGS__);                              \
    size_t name##_c_scratch_size(const eq_pool_params *p);                                   \
    size_t name##_dsp_scratch_size(const eq_pool_params *p);                                 \
    size_t name##_mve_scratch_size(const eq_pool_params *p)
EQ_NHWC_POOL_DECLARE(eq_nhwc_maxpool_s8, const int8_t *x, int8_t *y);
EQ_NHWC_POOL_DECLARE(eq_nhwc_avgpool_s8, const int8_t *x, const int32_t *recip, const int32_t *rshift, void *scratch,
                     int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* EQ_KERNELS_NHWC_H */
