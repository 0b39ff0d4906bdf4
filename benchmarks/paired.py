"""Paired comparisons of two quantized models on the same samples.

Two plans evaluated on the same images differ on only a few of them, so their top-1
rates alone cannot say whether one is better or the test set is too small to tell:

- `mcnemar`: the discordant samples (right for A only, right for B only) and the exact
  two-sided McNemar p-value (a binomial test on the discordant ones);
- `sqnr_gap`: SQNR(A) - SQNR(B) against the same float reference, with a 95% bootstrap
  interval over samples (each resample recomputes both SQNRs on the same samples, so
  the interval is of the gap, not of each SQNR).
"""
from __future__ import annotations

from math import comb

import numpy as np


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float]:
    """(samples only A gets right, only B gets right, exact two-sided p)."""
    a_only = int((right_a & ~right_b).sum())
    b_only = int((right_b & ~right_a).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return a_only, b_only, 1.0
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return a_only, b_only, min(1.0, 2 * tail)


def _sqnr_db(sig: np.ndarray, err: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(sig, 1e-30) / np.maximum(err, 1e-30))


def sqnr_gap(ref: np.ndarray, y_a: np.ndarray, y_b: np.ndarray, n_boot: int = 2000,
             seed: int = 0) -> tuple[float, float, float]:
    """(SQNR(A) - SQNR(B) in dB, 2.5th and 97.5th bootstrap percentiles), over samples
    (axis 0) with the signal and noise energies summed per resample."""
    ref = ref.reshape(len(ref), -1).astype(np.float64)
    sig = (ref ** 2).sum(1)
    err_a = ((y_a.reshape(ref.shape) - ref) ** 2).sum(1)
    err_b = ((y_b.reshape(ref.shape) - ref) ** 2).sum(1)
    gap = float(_sqnr_db(sig.sum(), err_a.sum()) - _sqnr_db(sig.sum(), err_b.sum()))
    idx = np.random.default_rng(seed).integers(0, len(ref), size=(n_boot, len(ref)))
    s = sig[idx].sum(1)
    boot = _sqnr_db(s, err_a[idx].sum(1)) - _sqnr_db(s, err_b[idx].sum(1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return gap, float(lo), float(hi)
