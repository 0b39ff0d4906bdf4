"""Activation range observers: see values batch by batch, then answer (lo, hi).

- MinMax: the exact extremes. Nothing is clipped, so one outlier stretches the scale of
  the whole tensor.
- Percentile(p): lo/hi at the (100 - p)th / p-th percentile of the values (99.99 by
  default), read from a histogram.
- MSE: the clipping range whose int8 quantization error over the observed values is
  smallest: for a candidate [a, b] with step s = (b - a) / 255 every value inside costs
  the rounding noise s^2 / 12 and every value outside costs its squared distance to the
  range (the clipping error). The search runs over a histogram (see below).

Histogram observers work in two passes over the data, because a histogram needs its
bins before it sees values: pass 1 is MinMax, pass 2 fills HIST_BINS bins spanning the
pass-1 range. Two cheap float passes are simpler than re-binning a growing histogram and
give the same histogram for any batching.
"""
from __future__ import annotations

import numpy as np

HIST_BINS = 2048


class MinMax:
    needs_histogram = False

    def __init__(self):
        self.lo, self.hi = np.inf, -np.inf

    def observe(self, x: np.ndarray) -> None:
        if x.size:
            lo, hi = float(np.min(x)), float(np.max(x))
            # NaN sticks (min/max would skip it), so the caller can refuse the range
            self.lo = lo if np.isnan(lo) or np.isnan(self.lo) else min(self.lo, lo)
            self.hi = hi if np.isnan(hi) or np.isnan(self.hi) else max(self.hi, hi)

    def range(self) -> tuple[float, float]:
        if self.lo > self.hi:  # never saw a value
            return 0.0, 0.0
        return self.lo, self.hi


class Histogram:
    """Counts over HIST_BINS equal bins spanning [lo, hi] (from a MinMax pass)."""
    needs_histogram = True

    def __init__(self, lo: float, hi: float, bins: int = HIST_BINS):
        self.lo, self.hi = float(lo), float(hi)
        self.counts = np.zeros(bins, dtype=np.int64)

    def observe(self, x: np.ndarray) -> None:
        if self.hi <= self.lo:
            self.counts[0] += x.size
            return
        c, _ = np.histogram(x, bins=self.counts.size, range=(self.lo, self.hi))
        self.counts += c

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.counts.size + 1)


def percentile_range(h: Histogram, p: float = 99.99) -> tuple[float, float]:
    if h.hi <= h.lo or h.counts.sum() == 0:
        return h.lo, h.hi
    cdf = np.cumsum(h.counts) / h.counts.sum()
    edges = h.edges()
    # hi: the right edge of the first bin where the CDF reaches p; lo symmetrically.
    hi = edges[1 + int(np.searchsorted(cdf, p / 100.0))] if p < 100 else h.hi
    lo = edges[int(np.searchsorted(cdf, 1.0 - p / 100.0, side="right"))] if p < 100 else h.lo
    # A tensor whose values are all on one side of 0 keeps its exact bound on that side
    # (e.g. ReLU outputs keep lo = 0): the quantizer widens to 0 anyway.
    return float(max(lo, h.lo)), float(min(hi, h.hi))


def mse_range(h: Histogram, rounds: int = 4, levels: int = 256) -> tuple[float, float]:
    """The clip range [lo, hi] minimizing the expected int8 error over the histogram.

    Candidates for each bound are fractions of the observed bound, both linear (1/64 ..
    1) and geometric (1/1000 .. 1, for heavy tails where the optimum sits far inside);
    lo and hi are optimized alternately (coordinate descent, `rounds` sweeps), which
    costs O(candidates * bins) per sweep instead of a full 2-D grid. A tensor that is
    non-negative (non-positive) keeps its exact lower (upper) bound."""
    if h.hi <= h.lo or h.counts.sum() == 0:
        return h.lo, h.hi
    edges = h.edges()
    centers = 0.5 * (edges[:-1] + edges[1:])
    nz = h.counts > 0
    x, w = centers[nz], h.counts[nz].astype(np.float64)
    fr = np.unique(np.concatenate([np.linspace(1 / 64, 1.0, 64), np.geomspace(1e-3, 1.0, 64)]))
    lo_c = h.lo * fr if h.lo < 0 else np.array([h.lo])
    hi_c = h.hi * fr if h.hi > 0 else np.array([h.hi])

    def cost(los, his):  # los, his broadcast to the candidates; returns their errors
        a, b = np.minimum(los, 0.0)[:, None], np.maximum(his, 0.0)[:, None]
        s2 = ((b - a) / (levels - 1)) ** 2
        over, under = np.maximum(x - b, 0.0), np.maximum(a - x, 0.0)
        inside = (over == 0) & (under == 0)
        return (w * (over ** 2 + under ** 2 + inside * s2 / 12.0)).sum(axis=1)

    lo, hi = lo_c[-1], hi_c[-1]
    for _ in range(rounds):
        hi = hi_c[int(np.argmin(cost(np.full(hi_c.size, lo), hi_c)))]
        lo = lo_c[int(np.argmin(cost(lo_c, np.full(lo_c.size, hi))))]
    return float(lo), float(hi)
