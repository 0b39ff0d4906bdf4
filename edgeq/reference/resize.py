"""QResizeBilinear: bilinear resize of H and W with 10-bit weights, TFLite's integer rule.

Each output row r reads input rows lo = y_table[3r], hi = y_table[3r + 1] with weight
f = y_table[3r + 2] (in 1/1024ths) on hi and 1024 - f on lo; the same for columns with
x_table. On raw int8 values (the weights of a tap sum to 2^20, so the zero point passes
through unchanged):

    acc = (1024 - fy) ((1024 - fx) x[lo_y, lo_x] + fx x[lo_y, hi_x])
          +       fy  ((1024 - fx) x[hi_y, lo_x] + fx x[hi_y, hi_x])        |acc| <= 2^27
    y   = rounding_divide_by_pot(acc, 20)                                  (half away from 0)

Output parameters equal the input's. The tables come from `bilinear_table`, TFLite's
ResizeBilinearInteger positions (a 10-bit step `scale_10`, half-pixel offset in integers),
so RESIZE_BILINEAR computes the same bytes (docs/semantics.md).
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import rounding_divide_by_pot
from edgeq.reference._common import i64, to_int8
from edgeq.ops import implements

ONE = 1 << 10  # weight resolution: 10 fractional bits


def tflite_positions(in_len: int, out_len: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """TFLite's integer positions along one axis, [out_len, 3] of (lo, hi, frac) as its kernel
    computes them (lo may exceed in_len - 1 in degenerate upsamplings from a few pixels)."""
    if align_corners and out_len > 1:
        scale_10 = (ONE * (in_len - 1) + (out_len - 1) // 2) // (out_len - 1)
    else:
        scale_10 = (ONE * in_len + out_len // 2) // out_len
    v = np.arange(out_len, dtype=np.int64)
    scaled = v * scale_10 + ((scale_10 // 2 - ONE // 2) if half_pixel else 0)
    trunc = lambda a: np.where(a >= 0, a // ONE, -((-a) // ONE))  # noqa: E731  C's division
    lo = np.maximum(trunc(scaled), 0)
    hi = np.minimum(trunc(scaled + ONE - 1), in_len - 1)
    return np.stack([lo, hi, scaled - ONE * lo], axis=1)


def normalized(table: np.ndarray) -> np.ndarray:
    """Where lo == hi both weights hit one element: frac 0 computes the same sum."""
    t = np.array(table, dtype=np.int64).reshape(-1, 3)
    t[t[:, 0] == t[:, 1], 2] = 0
    return t


TFLITE_MODES = {"half_pixel": (False, True), "pytorch_half_pixel": (False, True),
                "asymmetric": (False, False), "align_corners": (True, False)}


def bilinear_table(in_len: int, out_len: int, mode: str) -> list[int]:
    """The (lo, hi, frac) table of one axis for an ONNX coordinate_transformation_mode,
    flattened: TFLite's positions, normalized; pytorch_half_pixel onto one pixel reads 0."""
    if mode == "pytorch_half_pixel" and out_len == 1:
        return [0, 0, 0]
    t = normalized(tflite_positions(in_len, out_len, *TFLITE_MODES[mode]))
    if t[:, 0].max() > in_len - 1:
        raise ValueError(f"bilinear resize {in_len} -> {out_len} ({mode}) reads past the input")
    return t.reshape(-1).tolist()


def _check(table, in_len: int, what: str) -> np.ndarray:
    t = np.asarray(table, dtype=np.int64).reshape(-1, 3)
    if (t[:, :2].min() < 0 or t[:, :2].max() >= in_len or t[:, 2].min() < 0 or t[:, 2].max() >= ONE
            or np.any(t[:, 1] - t[:, 0] > 1) or np.any(t[:, 1] < t[:, 0])):
        raise ValueError(f"{what}: entries must be (lo, lo or lo + 1, frac in [0, {ONE})) inside {in_len}")
    return t


@implements("reference", "QResizeBilinear")
def qresize_bilinear(node, x, *unused):
    x = i64(x)
    if x.ndim != 4:
        raise ValueError(f"{node.name}: QResizeBilinear needs an [N, C, H, W] input")
    ty = _check(node.attr("y_table"), x.shape[2], f"{node.name} y_table")
    tx = _check(node.attr("x_table"), x.shape[3], f"{node.name} x_table")
    fy, fx = ty[:, 2][:, None], tx[:, 2][None, :]
    rows_lo, rows_hi = x[:, :, ty[:, 0], :], x[:, :, ty[:, 1], :]
    top = (ONE - fx) * rows_lo[..., tx[:, 0]] + fx * rows_lo[..., tx[:, 1]]
    bottom = (ONE - fx) * rows_hi[..., tx[:, 0]] + fx * rows_hi[..., tx[:, 1]]
    acc = (ONE - fy) * top + fy * bottom
    return to_int8(rounding_divide_by_pot(acc, 20))
