"""Helpers shared by the integer reference kernels (not a kernel module: registers nothing)."""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier


def i64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def to_int8(y: np.ndarray) -> np.ndarray:
    """Cast a result already clamped to [-128, 127] to int8 (checked: a wider value here is
    a kernel bug, never something to wrap silently)."""
    if y.size and (y.min() < -128 or y.max() > 127):
        raise AssertionError("intref: int8 result out of range before the cast")
    return y.astype(np.int8)


def check_int32(acc: np.ndarray, what: str) -> None:
    """The compiler's overflow proof says int32 accumulators never wrap; the reference
    checks it so a broken proof shows up as an error instead of different bytes in C."""
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{what}: int32 accumulator overflow "
                            f"(range [{acc.min()}, {acc.max()}])")


def mbqm_checked(x, mult, shift, what: str) -> np.ndarray:
    """multiply_by_quantized_multiplier with its precondition checked: x * 2^max(shift, 0)
    must fit int32. C (like TFLite) computes that left shift in int32, so a value outside
    the range would wrap there; the reference refuses it instead of disagreeing silently."""
    x = i64(x)
    shifted = x * (np.int64(1) << np.maximum(i64(shift), 0))
    if shifted.size and (shifted.min() < INT32_MIN or shifted.max() > INT32_MAX):
        raise OverflowError(f"{what}: MBQM input {x.min()}..{x.max()} shifted left by up to "
                            f"{int(np.max(shift))} leaves int32 (multiplier > 1 on a large value)")
    return multiply_by_quantized_multiplier(x, mult, shift)


def pool_out_size(size: int, k: int, stride: int, pad_begin: int, pad_end: int,
                  dilation: int) -> int:
    """Output length of a conv/pool window along one axis (floor mode, like ONNX/TFLite)."""
    span = dilation * (k - 1) + 1
    out = (size + pad_begin + pad_end - span) // stride + 1
    if out < 1:
        raise ValueError(f"window {span} larger than padded input {size + pad_begin + pad_end}")
    return out


def spatial_attrs(node, nd: int = 2):
    """(kernel-independent) strides, pads (top, left, bottom, right), dilations as tuples."""
    strides = tuple(int(s) for s in node.attr("strides", [1] * nd))
    pads = tuple(int(p) for p in node.attr("pads", [0] * (2 * nd)))
    dilations = tuple(int(d) for d in node.attr("dilations", [1] * nd))
    if len(strides) != nd or len(pads) != 2 * nd or len(dilations) != nd:
        raise ValueError(f"{node.name}: strides/pads/dilations must have {nd}/{2*nd}/{nd} entries")
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
        raise ValueError(f"{node.name}: strides/dilations must be >= 1 and pads >= 0")
    return strides, pads, dilations


def window_taps(size: int, out: int, k: int, stride: int, pad_begin: int, dilation: int):
    """For each kernel tap t along one axis: (input index per output position, mask of the
    output positions where that tap falls inside the input)."""
    o = np.arange(out)
    taps = []
    for t in range(k):
        idx = o * stride - pad_begin + t * dilation
        inside = (idx >= 0) & (idx < size)
        taps.append((np.clip(idx, 0, size - 1), inside))
    return taps


def clamp_attrs(node) -> tuple[int, int]:
    lo, hi = int(node.attr("act_min", -128)), int(node.attr("act_max", 127))
    if not -128 <= lo <= hi <= 127:
        raise ValueError(f"{node.name}: act_min/act_max {lo}/{hi} outside [-128, 127]")
    return lo, hi
