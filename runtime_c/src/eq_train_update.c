/* Training: the in-place QAS updates of biases and weights, with optional momentum
 * (edgeq/training/update.py and the update half of rules/conv.py). No weight-gradient buffer: each weight's sum A is
 * computed, turned into a step and applied before the next weight's. */
#include "eq_internal.h"
#include "eq_train.h"

size_t eq_train_conv2d_weight_update_scratch_size(const eq_conv2d_params *p)
{
    (void)p;
    return 0;
}

size_t eq_train_fc_weight_update_scratch_size(const eq_fc_params *p)
{
    (void)p;
    return 0;
}

eq_status eq_train_bias_update(int32_t batch, int32_t channels, int32_t positions, const int16_t *m,
                               int32_t e, const int32_t *bmult, const int32_t *bshift, int32_t limit,
                               const eq_train_momentum *mu, int32_t *bias)
{
    int32_t n, c, i;
    if (m == NULL || bmult == NULL || bshift == NULL || bias == NULL || batch < 1 || channels < 1 ||
        positions < 1 || limit < 0 || (mu != NULL && mu->velocity == NULL)) {
        return EQ_ERR_ARG;
    }
    for (c = 0; c < channels; ++c) {
        int32_t bsum = 0;  /* |bsum| <= batch * positions * 2^14 < 2^31 (plan) */
        int64_t b;
        for (n = 0; n < batch; ++n) {
            const int16_t *mc = m + ((size_t)n * channels + c) * positions;
            for (i = 0; i < positions; ++i) {
                bsum += mc[i];
            }
        }
        b = (int64_t)bias[c] - eq_train_momentum_step(mu, (size_t)c, eq_train_step(bsum, bmult[c], bshift[c], e, NULL));
        bias[c] = (int32_t)(b > limit ? limit : (b < -(int64_t)limit ? -limit : b));
    }
    return EQ_OK;
}

/* The fit-rounded mantissa of gradient element `index` (one draw per element of m). */
static int32_t fitted(const int16_t *m, size_t index, const eq_train_weight_params *u, const eq_draws *d,
                      uint32_t base)
{
    uint32_t draw;
    if (u->fit == 0) {
        return m[index];
    }
    if (!u->stochastic_fit) {
        return (int32_t)eq_round_shift64(m[index], u->fit, NULL);
    }
    draw = eq_mix32(d->seed + base + (uint32_t)index);
    return (int32_t)eq_round_shift64(m[index], u->fit, &draw);
}

/* Move one weight (and its residual) by step. */
static void apply(const eq_train_weight_params *u, int32_t step, int8_t *w, int8_t *residual)
{
    if (u->frac_bits == 0) {
        const int64_t v = (int64_t)*w - step;
        *w = (int8_t)(v > u->qmax ? u->qmax : (v < -u->qmax ? -u->qmax : v));
    } else {
        const int64_t one = (int64_t)1 << u->frac_bits, half = one >> 1;
        const int64_t lo = -one * u->qmax - half, hi = one * u->qmax + half - 1;
        int64_t master = (int64_t)*w * one + *residual - step;
        int64_t nw;
        master = master < lo ? lo : (master > hi ? hi : master);
        nw = eq_asr64(master + half, u->frac_bits);
        *w = (int8_t)nw;
        *residual = (int8_t)(master - nw * one);
    }
}

static int weight_params_ok(const eq_train_weight_params *u, const int8_t *residual, const eq_train_momentum *mu,
                            int stochastic_ok)
{
    return (mu == NULL || mu->velocity != NULL) && u != NULL && u->fit >= 0 && u->fit <= 14 && (u->frac_bits == 0 || u->frac_bits == 8) &&
           u->qmax >= 1 && u->qmax <= 127 && (u->frac_bits == 0 || residual != NULL) && stochastic_ok;
}

eq_status eq_train_conv2d_weight_update(const eq_conv2d_params *p, const eq_train_weight_params *u,
                                        const int8_t *x, const int16_t *m, int32_t e,
                                        const int32_t *wmult, const int32_t *wshift,
                                        const uint8_t *selected_in, eq_draws *draws,
                                        const eq_train_momentum *mu, int8_t *w, int8_t *residual)
{
    int32_t n, g, col, cil, kh, kw, oh, ow, cig, cog;
    uint32_t fit_base, step_base;
    size_t m_size, w_size;
    if (p == NULL || x == NULL || m == NULL || wmult == NULL || wshift == NULL || w == NULL ||
        p->batch < 1 || p->groups < 1 ||
        !weight_params_ok(u, residual, mu, (!u || !(u->stochastic || (u->stochastic_fit && u->fit)) || draws != NULL))) {
        return EQ_ERR_ARG;
    }
    if (!eq_exact_quotient(p->in_c, p->groups, &cig) || !eq_exact_quotient(p->out_c, p->groups, &cog) ||
        !eq_window_out_ok(p->in_h, p->out_h, p->kernel_h, p->stride_h, p->pad_top, p->pad_bottom, p->dilation_h) ||
        !eq_window_out_ok(p->in_w, p->out_w, p->kernel_w, p->stride_w, p->pad_left, p->pad_right, p->dilation_w)) {
        return EQ_ERR_SHAPE;
    }
    m_size = (size_t)p->batch * p->out_c * p->out_h * p->out_w;
    w_size = (size_t)p->out_c * cig * p->kernel_h * p->kernel_w;
    fit_base = draws != NULL ? draws->counter : 0;
    step_base = fit_base + ((u->fit && u->stochastic_fit) ? (uint32_t)m_size : 0u);
    for (g = 0; g < p->groups; ++g) {
        for (col = 0; col < cog; ++col) {
            const int32_t co = g * cog + col;
            for (cil = 0; cil < cig; ++cil) {
                const int32_t ci = g * cig + cil;
                if (selected_in != NULL && !selected_in[ci]) {
                    continue;
                }
                for (kh = 0; kh < p->kernel_h; ++kh) {
                    for (kw = 0; kw < p->kernel_w; ++kw) {
                        const size_t wi = (((size_t)co * cig + cil) * p->kernel_h + kh) * p->kernel_w + kw;
                        int32_t a = 0;  /* |a| <= positions * 255 * (2^14 >> fit) < 2^31 (plan) */
                        uint32_t draw;
                        for (n = 0; n < p->batch; ++n) {
                            for (oh = 0; oh < p->out_h; ++oh) {
                                const int32_t ih = oh * p->stride_h - p->pad_top + kh * p->dilation_h;
                                if (ih < 0 || ih >= p->in_h) {
                                    continue;
                                }
                                for (ow = 0; ow < p->out_w; ++ow) {
                                    const int32_t iw = ow * p->stride_w - p->pad_left + kw * p->dilation_w;
                                    const size_t mi = (((size_t)n * p->out_c + co) * p->out_h + oh) * p->out_w + ow;
                                    if (iw < 0 || iw >= p->in_w) {
                                        continue;
                                    }
                                    a += ((int32_t)x[(((size_t)n * p->in_c + ci) * p->in_h + ih) * p->in_w + iw] - p->x_zp)
                                         * fitted(m, mi, u, draws, fit_base);
                                }
                            }
                        }
                        if (u->stochastic) {
                            draw = eq_mix32(draws->seed + step_base + (uint32_t)wi);
                        }
                        apply(u, eq_train_momentum_step(mu, wi, eq_train_step(a, wmult[co], wshift[co], e + u->fit,
                                                                              u->stochastic ? &draw : NULL)),
                              &w[wi], u->frac_bits ? &residual[wi] : NULL);
                    }
                }
            }
        }
    }
    if (draws != NULL) {
        draws->counter = step_base + (u->stochastic ? (uint32_t)w_size : 0u);
    }
    return EQ_OK;
}

eq_status eq_train_fc_weight_update(const eq_fc_params *p, const eq_train_weight_params *u,
                                    const int8_t *x, const int16_t *m, int32_t e,
                                    const int32_t *wmult, const int32_t *wshift,
                                    const uint8_t *selected_in, eq_draws *draws,
                                    const eq_train_momentum *mu, int8_t *w, int8_t *residual)
{
    int32_t n, c, k;
    uint32_t fit_base, step_base;
    if (p == NULL || x == NULL || m == NULL || wmult == NULL || wshift == NULL || w == NULL ||
        p->batch < 1 || p->in_features < 1 || p->out_features < 1 ||
        !weight_params_ok(u, residual, mu, (!u || !(u->stochastic || (u->stochastic_fit && u->fit)) || draws != NULL))) {
        return EQ_ERR_ARG;
    }
    fit_base = draws != NULL ? draws->counter : 0;
    step_base = fit_base + ((u->fit && u->stochastic_fit) ? (uint32_t)p->batch * (uint32_t)p->out_features : 0u);
    for (c = 0; c < p->out_features; ++c) {
        for (k = 0; k < p->in_features; ++k) {
            const size_t wi = (size_t)c * p->in_features + k;
            int32_t a = 0;
            uint32_t draw;
            if (selected_in != NULL && !selected_in[k]) {
                continue;
            }
            for (n = 0; n < p->batch; ++n) {
                a += ((int32_t)x[(size_t)n * p->in_features + k] - p->x_zp)
                     * fitted(m, (size_t)n * p->out_features + c, u, draws, fit_base);
            }
            if (u->stochastic) {
                draw = eq_mix32(draws->seed + step_base + (uint32_t)wi);
            }
            apply(u, eq_train_momentum_step(mu, wi, eq_train_step(a, wmult[c], wshift[c], e + u->fit,
                                                                  u->stochastic ? &draw : NULL)),
                  &w[wi], u->frac_bits ? &residual[wi] : NULL);
        }
    }
    if (draws != NULL) {
        draws->counter = step_base + (u->stochastic ? (uint32_t)p->out_features * (uint32_t)p->in_features : 0u);
    }
    return EQ_OK;
}
