"""Helpers shared by the C kernel tests: node builders, seeded int8 data, and per-channel
requantization parameters that mix realistic multipliers with the extremes."""
from __future__ import annotations

import numpy as np

from edgeq import fixedpoint as fp
from edgeq.reference import load_all
from edgeq.ir import Node

M_EXTREMES = (1 << 30, (1 << 31) - 1)
load_all()  # run_node loads the registry only when it is empty


def node(op, **attrs):
    return Node(op, f"t_{op}", [], [], attrs)


def rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def max_left_shift(acc) -> np.ndarray:
    """Largest shift per value for which acc << shift still fits int32 (MBQM's range)."""
    mag = np.abs(np.asarray(acc, dtype=np.int64))
    return 30 - np.array([int(v).bit_length() for v in mag.ravel()]).reshape(mag.shape) + 1


def mults_shifts(rng, n, acc_max=None):
    """Per-channel (mult, shift): a mix of realistic multipliers and the extremes."""
    real = np.exp(rng.uniform(np.log(1e-4), np.log(2e-2), size=n))
    if acc_max is not None:  # spread the outputs over the int8 range
        real = rng.uniform(0.3, 1.5, size=n) * 128 / np.maximum(acc_max, 1)
    m, s = fp.quantize_multiplier_array(real)
    m, s = m.astype(np.int64), s.astype(np.int64)
    for c in range(n):
        kind = c % 5
        if kind == 1:
            m[c] = M_EXTREMES[c % 2]
        elif kind == 2:
            m[c], s[c] = M_EXTREMES[(c // 5) % 2], -31
        elif kind == 3:
            m[c], s[c] = M_EXTREMES[(c // 5 + 1) % 2], 30
    if acc_max is not None:  # keep MBQM's left shift inside int32, as the compiler proves
        s = np.minimum(s, max_left_shift(acc_max))
    return m.astype(np.int32), s.astype(np.int32)
