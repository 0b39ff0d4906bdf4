"""Gradients as integers: a mantissa array and one power-of-two exponent per tensor.

A gradient tensor G stands for the real values `m * 2^e`: `m` is an integer array whose
magnitude is at most L = 2^(bits - 2) (bits = 16: |m| <= 16384, so it is stored as int16
with one bit of headroom), `e` an integer carried beside it at run time (block floating
point, one exponent per tensor). Every backward rule computes exact int32 accumulators
and then `normalize`s them back to that form, so the exponent follows the gradient's
magnitude as training goes on: nothing about the size of a gradient is fixed at compile
time, only the bounds that make each accumulation fit int32.

Rounding a value x by r bits (x / 2^r to an integer) is one of:
- nearest: round half away from zero (rounding_divide_by_pot's rule, for int64 and
  r <= 62);
- stochastic: floor((x + u) / 2^r) with u uniform in [0, 2^r) from `draws` (unbiased:
  E = x / 2^r). u is a 32-bit draw scaled to r bits: draw >> (32 - r) for r <= 32,
  draw << (r - 32) beyond (the low bits are then 0, a bias below 2^-32 of a unit).
r >= 63 gives 0 for both (|x| < 2^62 there, less than half a unit); r <= 0 is an exact
left shift.

The pseudo-random stream is counter-based so that every element's draw is known without
running the others first (C loops may go in any order and numpy vectorizes it):
draw(k) = mix32(seed + k mod 2^32) with Wellons' lowbias32 mixer, and k a 32-bit counter
that the training state carries across steps. A call that rounds an array of n elements
uses draws base .. base + n - 1 in row-major order and advances the counter by n, whether
or not an element needed rounding.

Example: x = 1000, r = 4 (1000 / 16 = 62.5): nearest gives 63; stochastic gives 62 or 63,
63 exactly when u >= 8, i.e. with probability 1/2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK32 = 0xFFFFFFFF
DEFAULT_SEED = 0x2545F491
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def i64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def mix32(x) -> np.ndarray:
    """lowbias32: x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
    (all mod 2^32). A bijection on uint32 with good avalanche; integer multiply only."""
    x = np.asarray(x, dtype=np.uint64) & MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


class Draws:
    """The counter-based stream: draw(k) = mix32(seed + k), k advancing across calls."""

    def __init__(self, seed: int = DEFAULT_SEED, counter: int = 0):
        self.seed = int(seed) & MASK32
        self.counter = int(counter) & MASK32

    def take(self, n: int) -> np.ndarray:
        """The next n draws as int64 values in [0, 2^32)."""
        k = (np.arange(n, dtype=np.uint64) + self.counter + self.seed) & MASK32
        self.counter = (self.counter + n) & MASK32
        return mix32(k).astype(np.int64)


def _scaled_draws(draws: np.ndarray, r: np.ndarray) -> np.ndarray:
    """A 32-bit draw scaled to r fraction bits (r in [1, 62])."""
    return np.where(r <= 32, draws >> np.clip(32 - r, 0, 31), draws << np.clip(r - 32, 0, 30))


def round_shift(x, r, rounding: str = "nearest", rng: Draws | None = None) -> np.ndarray:
    """x / 2^r rounded to an integer (see the module doc); x int64 with |x| < 2^62, r an
    int or an array broadcasting against x. Stochastic rounding takes x.size draws."""
    x = i64(x)
    r = np.broadcast_to(i64(r), x.shape)
    if rounding == "stochastic":
        if rng is None:
            raise ValueError("round_shift: stochastic rounding needs a Draws stream")
        u = _scaled_draws(rng.take(x.size).reshape(x.shape), np.clip(r, 1, 62))
    elif rounding != "nearest":
        raise ValueError(f"round_shift: unknown rounding {rounding!r}")
    left = np.clip(-r, 0, 62)
    if np.any((r < 0) & (x != 0) & ((left > 31) | (np.abs(x) > (INT32_MAX >> np.minimum(left, 31))))):
        raise OverflowError("round_shift: an exact left shift would leave int32")
    rr = np.clip(r, 1, 62)
    if rounding == "nearest":
        mask = (np.int64(1) << rr) - 1
        threshold = (mask >> 1) + (x < 0)
        down = (x >> rr) + ((x & mask) > threshold)
    else:
        down = (x + u) >> rr
    out = np.where(r <= 0, x << left, down)
    return np.where(r >= 63, 0, out)


def bit_length(v) -> np.ndarray:
    """Bits of a non-negative int64 (0 for 0): 32 - clz for values below 2^32."""
    v = i64(v).copy()
    n = np.zeros(v.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << step)
        v = np.where(big, v >> step, v)
        n = np.where(big, n + step, n)
    return n + (v > 0)


@dataclass
class Grad:
    """The real gradient m * 2^e of one tensor (m int64 holding the mantissas)."""

    m: np.ndarray
    e: int

    def real(self) -> np.ndarray:
        """Host-side view for tests and reports (float64, never on the device)."""
        return self.m.astype(np.float64) * 2.0 ** self.e


def limit(bits: int) -> int:
    """Largest mantissa magnitude of a normalized gradient: 2^(bits - 2)."""
    return 1 << (bits - 2)


def normalize(acc, e: int, bits: int, rounding: str = "nearest", rng: Draws | None = None) -> Grad:
    """Exact accumulators `acc` (real value acc * 2^e) -> a Grad with |m| <= 2^(bits-2).

    r = bit_length(max|acc| - 1) - (bits - 2) is the smallest shift with
    max|acc| <= 2^(bits-2) * 2^r, so the rounded mantissas stay within the limit in both
    rounding modes; r < 0 (small gradients) is an exact left shift that keeps the full
    precision for the next rule. An all-zero tensor keeps e. Stochastic rounding takes
    acc.size draws whenever r > 0."""
    acc = i64(acc)
    peak = int(np.max(np.abs(acc), initial=0))
    if peak == 0:
        return Grad(np.zeros(acc.shape, np.int64), int(e))
    r = int(bit_length(peak - 1)) - (bits - 2)
    if r > 0:
        return Grad(round_shift(acc, r, rounding, rng), int(e) + r)
    return Grad(acc << -r, int(e) + r)


def add(a: Grad, b: Grad, bits: int, rounding: str = "nearest", rng: Draws | None = None) -> Grad:
    """The gradient of a tensor read by two nodes: both brought to the larger exponent
    (the other rounded right by the difference), summed exactly, normalized. With
    |m| <= 2^(bits-2) each, the sum is below 2^(bits-1): no overflow."""
    e = max(a.e, b.e)
    ma = round_shift(a.m, e - a.e, rounding, rng) if a.e < e else a.m
    mb = round_shift(b.m, e - b.e, rounding, rng) if b.e < e else b.m
    return normalize(ma + mb, e, bits, rounding, rng)
