"""Fixed-point SGD with quantization-aware scaling, applied in place right after each gradient.

The real SGD step W -= lr * dL/dW, written in the integer units of the parameter, is
QAS (MCUNetV3): a weight w (real W = s_w w) moves by lr * G_W / s_w = lr * G_w / s_w^2
with G_w = s_w G_W the gradient w.r.t. the integer; a bias b (real s_x s_w b) moves by
lr * G_b / (s_x s_w)^2 in its integer units. The scales, the learning rate and the
master fraction bits fold into ONE dyadic multiplier per output channel, computed at
compile time:

  weights: u[c] = lr * s_x * 2^F / s_w[c]    (G_W = s_x 2^e A, A the int32 accumulator)
  biases:  v[c] = lr / (s_x * s_w[c])         (G_B = 2^e Bsum)

and the step in integer units is `step = round(acc * mult[c] * 2^(shift[c] - 31 + e))`:
P = acc * mult (int64, exact), R = 31 - shift - e, step = round_shift(P, R) (one rounding,
nearest or stochastic), saturated to +-2^30 (a larger step saturates the parameter
anyway). R <= 0 is an exact left shift, saturated.

Parameters:
- bias (int32): bias = clamp(bias - step, -limit, limit) with limit = (2^31 - 1) >> L -
  K * 255 * qmax, L = max(forward requant shift, 0): the forward's int32 overflow proof
  (|acc| <= K * 255 * qmax + |bias|, also after MBQM's left shift) stays true.
- weights "master" (F = 8): an int8 weight w plus an int8 residual r form the int16
  master copy M = 256 w + r; M = clamp(M - step, -256 qmax - 128, 256 qmax + 127), then
  w = (M + 128) >> 8 (nearest) and r = M - 256 w in [-128, 127]. The forward reads w
  unchanged; steps smaller than one int8 unit accumulate in r.
- weights "stochastic" / "nearest" (F = 0): w = clamp(w - step, -qmax, qmax), the step
  rounded stochastically (unbiased) or to nearest (steps below half a unit are lost:
  the ablation that shows why the other two exist).
- momentum mu > 0 (optional, off by default as in MCUNetV3): a velocity V (int32, in the
  parameter's step units) with V = round_shift(V * mu_mult, 31 - mu_shift) + step,
  saturated to +-2^30, and the parameter moves by V instead of step.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.fixedpoint import quantize_multiplier, quantize_multiplier_array
from edgeq.training.gradient import Draws, i64, round_shift

STEP_LIMIT = 1 << 30
MASTER_BITS = 8
WEIGHT_MODES = {"master": MASTER_BITS, "stochastic": 0, "nearest": 0}


def fraction_bits(mode: str) -> int:
    if mode not in WEIGHT_MODES:
        raise EdgeqError(f"unknown weight update mode {mode!r}", f"use one of {sorted(WEIGHT_MODES)}")
    return WEIGHT_MODES[mode]


def dyadic(reals: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult, shift) of positive reals, refusing ones the int32 form cannot hold."""
    reals = np.asarray(reals, dtype=np.float64)
    if np.any(reals >= 2.0 ** 30) or np.any(reals <= 0):
        raise EdgeqError(f"{what}: multiplier {reals.max():.3g} outside (0, 2^30)",
                         "use a smaller learning rate")
    return quantize_multiplier_array(reals)


def weight_multipliers(lr: float, s_x: float, s_w: np.ndarray, frac_bits: int, what: str):
    return dyadic(lr * s_x * 2.0 ** frac_bits / np.asarray(s_w, np.float64), what)


def bias_multipliers(lr: float, s_x: float, s_w: np.ndarray, what: str):
    return dyadic(lr / (s_x * np.asarray(s_w, np.float64)), what)


def momentum_multiplier(mu: float) -> tuple[int, int]:
    if not 0.0 <= mu < 1.0:
        raise EdgeqError(f"momentum {mu} outside [0, 1)", "use a momentum like 0.9, or 0 for none")
    return quantize_multiplier(mu)


def bias_limit(k: int, qmax: int, requant_shift: int) -> int:
    """Largest |bias| that keeps the forward's accumulator proof: (K*255*qmax + |bias|)
    << max(shift, 0) < 2^31."""
    return (((1 << 31) - 1) >> max(int(requant_shift), 0)) - k * 255 * qmax


def step(acc, mult, shift, e: int, rounding: str, rng: Draws | None) -> np.ndarray:
    """round(acc * mult * 2^(shift - 31 + e)) saturated to +-2^30; mult/shift broadcast
    against acc (per output channel on axis 0). Stochastic rounding takes acc.size draws."""
    acc = i64(acc)
    p = acc * i64(mult)  # |acc| < 2^31, mult < 2^31: exact in int64
    r = np.broadcast_to(31 - i64(shift) - int(e), acc.shape)
    right = round_shift(p, np.maximum(r, 1), rounding, rng)
    # r <= 0: p * 2^-r saturates unless it is small; compute it without overflowing int64
    left = np.clip(-r, 0, 62)
    big = np.abs(p) > (STEP_LIMIT >> np.minimum(left, 30))
    exact_left = np.where(big, np.sign(p) * STEP_LIMIT, p << np.where(big, 0, left))
    out = np.where(r > 0, right, exact_left)
    return np.clip(out, -STEP_LIMIT, STEP_LIMIT)


def momentum(v, delta, mu_mult: int, mu_shift: int) -> np.ndarray:
    """V = round(V * mu) + step, saturated (nearest rounding, no draws)."""
    decayed = round_shift(i64(v) * mu_mult, 31 - mu_shift, "nearest")
    return np.clip(decayed + i64(delta), -STEP_LIMIT, STEP_LIMIT)


def apply_bias(bias, delta, limit: int) -> np.ndarray:
    return np.clip(i64(bias) - i64(delta), -limit, limit).astype(np.int32)


def apply_weights(w, residual, delta, select, frac_bits: int, qmax: int):
    """New (int8 weights, residual) after moving the selected elements by delta (in units
    of 2^-frac_bits); unselected elements are untouched."""
    w, delta = i64(w), np.where(select, i64(delta), 0)
    if frac_bits == 0:
        return np.clip(w - delta, -qmax, qmax).astype(np.int8), residual
    one = 1 << frac_bits
    half = one >> 1
    master = np.clip((w << frac_bits) + i64(residual) - delta, -one * qmax - half, one * qmax + half - 1)
    new_w = (master + half) >> frac_bits
    return new_w.astype(np.int8), (master - (new_w << frac_bits)).astype(np.int8)
