"""Symmetric weight quantization (docs/semantics.md: weights are symmetric, z = 0).

q = round_half_even(W / scale), clamped to [-qmax, qmax] with qmax = 2^(bits-1) - 1, so
-128 never appears and negation cannot overflow. scale = max|W_c| / qmax per output
channel (axis 0 for Conv [Co, Ci/g, kH, kW] and Gemm [Co, K]) or over the whole tensor,
rounded to float32 like every scale of the quantized graph (a .tflite file stores float32
scales and TFLite derives its multipliers from them; the clamp absorbs the rounding).

Example: W = [[0.5, -1.0], [0.02, 0.01]], bits=8, per channel ->
scales = [1/127, 0.02/127], q = [[64, -127], [127, 64]] (63.5 rounds to even 64).

An all-zero channel gets scale 1.0 (any positive value works: every q is 0) so that the
bias scale s_in * s_w[c] and the requant multiplier stay finite and positive.

Weights that already lie on a per-tensor grid (a model quantized before export: per-tensor
QAT, or a hybrid file such as MLPerf's kws01 whose convs hold int8 * s) keep that grid.
Re-rounding them per channel to max|W_c| / qmax would add up to half an LSB of error to
weights that are exact as they are; instead channel c gets s / j_c with the largest
integer j_c that keeps max|q_c| <= qmax, so every weight stays exact and each channel still
uses most of its range. Example: s = 0.1, W_c = [0.3, -0.2] -> k = [3, -2], j_c = 42,
scale 0.1/42, q = [126, -84] (per channel max/127 would give [127, -85]: -0.2 -> -0.2008).

Likewise weights already on a per-channel grid (W_c = k * s_c, |k| <= qmax: GPTQ rounding
in edgeq/round_weights.py, or a per-channel QAT export) keep it: channel c gets
max|W_c| / j_c with the largest j_c <= qmax that makes every W_c * j_c / max|W_c| an
integer. When GPTQ's error feedback moved a channel's largest weight off the top code
(max|k| = 6 at 4 bits), max|W_c| / qmax would re-round the whole channel; j_c = 6 keeps it.
Generic float weights are never on such a grid (each weight would have to land within
1e-3 LSB of an integer for the same j_c), and if a channel were, keeping it is exact.
"""
from __future__ import annotations

import numpy as np

from edgeq.quantization.rules.multipliers import f32_array


def _reduce_axes(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i != axis)


def weight_scales(W: np.ndarray, bits: int = 8, per_channel: bool = True,
                  axis: int = 0) -> np.ndarray:
    """float32 values in float64 arrays: shape (W.shape[axis],) per channel, () per tensor."""
    W = np.asarray(W, dtype=np.float64)
    qmax = (1 << (bits - 1)) - 1
    if per_channel and W.ndim > 0:
        amax = np.max(np.abs(W), axis=_reduce_axes(W.ndim, axis % W.ndim)) if W.ndim > 1 \
            else np.abs(W)
    else:
        amax = np.asarray(np.max(np.abs(W)) if W.size else 0.0)
    scale = amax / qmax
    if per_channel and W.ndim > 1:
        on_grid = _existing_grid_scales(W, qmax, axis % W.ndim)
        if on_grid is None:
            on_grid = _channel_grid_scales(W, qmax, axis % W.ndim)
        if on_grid is not None:
            scale = on_grid
    return f32_array(np.where(scale > 0, scale, 1.0))


GRID_TOLERANCE = 1e-3  # in LSBs: float32 storage of int8 * s is exact to ~1e-5 LSB


def _existing_grid_scales(W: np.ndarray, qmax: int, axis: int) -> np.ndarray | None:
    """Per-channel scales s / j_c if W = k * s with integers |k| <= qmax, else None."""
    amax = float(np.max(np.abs(W))) if W.size else 0.0
    if amax == 0.0:
        return None
    s = amax / qmax
    k = W / s
    if np.max(np.abs(k - np.round(k))) > GRID_TOLERANCE:
        return None
    kmax = np.max(np.abs(np.round(k)), axis=_reduce_axes(W.ndim, axis))
    j = np.floor(qmax / np.maximum(kmax, 1.0))
    return np.where(kmax > 0, s / j, 0.0)


_PROBE = 16  # weights per channel tried for every j before a channel is checked in full


def _channel_grid_scales(W: np.ndarray, qmax: int, axis: int) -> np.ndarray | None:
    """Per-channel scales max|W_c| / j_c if every channel lies on its own grid, else None."""
    rows = np.moveaxis(W, axis, 0).reshape(W.shape[axis], -1)
    amax = np.max(np.abs(rows), axis=1)
    live = amax > 0
    if not np.any(live):
        return None
    r = rows[live] / amax[live, None]  # in [-1, 1]; a grid channel is k / j_c
    probe = r[:, :_PROBE]
    j_best = np.zeros(len(r))
    for j in range(qmax, 0, -1):  # largest j first: the finest grid that holds the weights
        fits = np.max(np.abs(probe * j - np.round(probe * j)), axis=1) <= GRID_TOLERANCE
        j_best = np.where((j_best == 0) & fits, j, j_best)
    if np.any(j_best == 0):
        return None
    k = r * j_best[:, None]
    if np.max(np.abs(k - np.round(k))) > GRID_TOLERANCE:
        return None  # a probe matched by chance; the full channel does not
    scale = np.zeros(len(amax))
    scale[live] = amax[live] / j_best
    return scale


def quantize_weights(W: np.ndarray, bits: int = 8, per_channel: bool = True,
                     axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (q int8, scales). q has W's shape; scales as in `weight_scales`."""
    if not 2 <= bits <= 8:
        raise ValueError(f"quantize_weights: bits must be in [2, 8], got {bits}")
    W = np.asarray(W, dtype=np.float64)
    scales = weight_scales(W, bits, per_channel, axis)
    return quantize_with_scales(W, scales, bits, axis), scales


def quantize_with_scales(W: np.ndarray, scales: np.ndarray, bits: int = 8,
                         axis: int = 0) -> np.ndarray:
    """int8 q = clamp(round_half_even(W / scale)); the quantizer uses it after raising a
    channel's scale (e.g. so that its int32 bias fits)."""
    qmax = (1 << (bits - 1)) - 1
    W = np.asarray(W, dtype=np.float64)
    q = np.clip(np.round(W / _bcast(np.asarray(scales, np.float64), W.ndim, axis)), -qmax, qmax)
    return q.astype(np.int8)  # np.round above rounds half to even


def fake_quantize_weights(W: np.ndarray, bits: int = 8, per_channel: bool = True,
                          axis: int = 0) -> np.ndarray:
    """W after a quantize/dequantize round trip, in W's float dtype (for bias correction)."""
    W = np.asarray(W)
    q, scales = quantize_weights(W, bits, per_channel, axis)
    out = q.astype(np.float64) * _bcast(scales, W.ndim, axis)
    return out.astype(W.dtype if np.issubdtype(W.dtype, np.floating) else np.float32)


def _bcast(scales: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if scales.ndim == 0 or ndim == 0:
        return scales
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return scales.reshape(shape)
