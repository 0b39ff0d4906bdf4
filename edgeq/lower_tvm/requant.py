"""edgeq's requantization (docs/semantics.md) as TE expressions, with TFLite's two roundings.

MBQM(x, m, shift) = rounding_divide_by_pot(SRDHM(x << max(shift, 0), m), max(-shift, 0)).
`tirx.q_multiply_shift` rounds once, so it is not used: both steps are written here.

- SRDHM(a, m) for 0 <= m < 2^31 is `(a * m + 2^30) >> 31` in int64. edgeq.fixedpoint
  rounds half away from zero with a truncating division; for a * m >= 0 that is this
  floor form, and for a * m < 0, trunc((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31)
  too (the ceiling identity ceil(n/d) = floor((n + d - 1)/d) with n = -p - 2^30). Its one
  saturating case (INT32_MIN * INT32_MIN) needs m < 0, which quantize_multiplier never
  gives. LLVM turns the int64 form into smull/smull2 + rshrn/rshrn2 #31 on NEON.
- rounding_divide_by_pot(v, e) = (v >> e) + ((v & mask) > (mask >> 1) + (v < 0)) with
  mask = 2^e - 1, the reference's own int32 form (it cannot overflow, where v + 2^(e-1)
  could).

The same two steps in NEON instructions (`form="neon"`, what the aarch64 kernels use:
5 instructions per 4 lanes instead of about 12), equal for every input:
- SRDHM(a, m) is `sqrdmulh`: (2 a m + 2^31) >> 32 = (a m + 2^30) >> 31, saturating the
  same single case (gemmlowp's NEON path is this very instruction).
- rounding_divide_by_pot(v, e) is `srshl(sqadd(v, fixup), -e)` with fixup = -1 when v < 0
  and e > 0 (the sign bit of v & -e), else 0: srshl by -e rounds half up exactly (no
  intermediate overflow); subtracting 1 first from a negative v makes it round half away
  from zero: floor((v - 1 + 2^(e-1)) / 2^e). v = INT32_MIN saturates to itself, whose
  quotient is exact anyway.
- form="neon_rs", when every channel shifts right (e >= 1, the usual case): the fixup is
  then v >> 31 and the saturating add a plain one, `ssra`-able: v = sqrdmulh(x, m) with
  0 <= m < 2^31 has |v| <= 2^31 - 1, so v - 1 never wraps. One instruction instead of
  three.
tests/test_lower_tvm.py checks both forms against edgeq.fixedpoint on edge values.

The shifts are per output channel, so the kernels take them as arrays: `lshift` =
max(shift, 0), `rshift` = max(-shift, 0) (see `split_shifts`; the NEON form takes
`-rshift`). The compiler's range proof guarantees that x << lshift fits int32
(docs/semantics.md, MBQM's precondition).
"""
from __future__ import annotations

import numpy as np

I32, I64 = "int32", "int64"


def split_shifts(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (left, right) shift arrays from the graph's signed shifts."""
    s = np.asarray(shift, dtype=np.int64)
    return np.maximum(s, 0).astype(np.int32), np.maximum(-s, 0).astype(np.int32)


def srdhm(a, m):
    from tvm import tirx
    p = a.astype(I64) * m.astype(I64) + tirx.const(1 << 30, I64)
    return (p >> tirx.const(31, I64)).astype(I32)


def rounding_divide_by_pot(v, e):
    from tvm import tirx
    one, zero = tirx.const(1, I32), tirx.const(0, I32)
    mask = (one << e) - one
    threshold = (mask >> one) + tirx.Select(v < zero, one, zero)
    return (v >> e) + tirx.Select((v & mask) > threshold, one, zero)


def _neon(name: str, *args):
    from tvm import tirx
    return tirx.call_llvm_pure_intrin(I32, f"llvm.aarch64.neon.{name}", *args)


def mbqm(x, mult, lshift, rshift, with_left: bool = True, form: str = "int64"):
    """multiply_by_quantized_multiplier; `with_left=False` when every left shift is 0
    (the usual case: multipliers below 1), which saves the shift. With form="neon",
    `rshift` holds the negated right shifts and the expression must be vectorized 4
    lanes wide (the NEON intrinsics exist for 4 x int32 only)."""
    if with_left:
        x = x << lshift
    if form == "int64":
        return rounding_divide_by_pot(srdhm(x, mult), rshift)
    from tvm import tirx
    v = _neon("sqrdmulh", x, mult)
    if form == "neon_rs":
        return _neon("srshl", v + (v >> tirx.const(31, I32)), rshift)
    fixup = (v & rshift) >> tirx.const(31, I32)
    return _neon("srshl", _neon("sqadd", v, fixup), rshift)


NEON_FORMS = ("neon", "neon_rs")


def neon_form(rshift) -> str:
    """The NEON form for these right shifts (see the module docstring)."""
    return "neon_rs" if np.min(rshift) >= 1 else "neon"


def shift_args(rshift: np.ndarray, form: str) -> np.ndarray:
    """The right-shift array a kernel of `form` takes."""
    return np.asarray(-rshift if form in NEON_FORMS else rshift, dtype=np.int32)


def clamp_to_int8(y, y_zp: int, act_min: int, act_max: int):
    from tvm import tirx
    y = y + tirx.const(int(y_zp), I32)
    y = tirx.max(tirx.min(y, tirx.const(int(act_max), I32)), tirx.const(int(act_min), I32))
    return y.astype("int8")
