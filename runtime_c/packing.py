"""Compile-time packing for the channels-last kernels of eq_kernels_nhwc.h.

Generated code calls a kernel variant (isa "c", "dsp" or "mve": `isa_for_cpu`) with
constants packed here for that variant: weights in the order the variant reads them,
biases with the input zero point folded in, and per-channel requantization constants.
Every function returns plain numpy arrays; the C initialisers are the code generator's.

    pk = pack_conv(w, bias, mult, shift, x_zp=-128, groups=1, isa="dsp")
    pk.w, pk.bias, pk.rq          # int8 [...], int32 [Co'], int64 [Co', 4] (eq_rq words)
    rq_initializer(pk.rq)         # "{{m, rs, 0x...u, hi}, ...}" for a `static const eq_rq`

The formats are documented in eq_kernels_nhwc.h beside each kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from edgeq.reference._common import mbqm_checked

ISAS = ("c", "dsp", "mve")
ACC_LIMIT = 1 << 31  # mult < 2^31


def isa_for_cpu(cpu: str) -> str:
    """The NHWC kernel variant for a target CPU (what EQ_NHWC picks when compiling for it)."""
    if cpu == "cortex-m55":
        return "mve"
    if cpu in ("cortex-m4", "cortex-m7", "cortex-m33"):
        return "dsp"
    return "c"


def _check_isa(isa: str) -> None:
    if isa not in ISAS:
        raise ValueError(f"unknown kernel variant {isa!r}: one of {ISAS}")


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


# ---- requantization ----------------------------------------------------------------------

def pack_requant(mult, shift) -> np.ndarray:
    """eq_rq words per channel: [mult, rs, c_lo, c_hi] (int64 holding the C values; c_lo is
    the unsigned low word). shift <= -1: rs = R - 1 and (c_hi:c_lo) = 2^30 + 2^(30+R) with
    R = -shift; shift >= 0: rs = -1 and c_hi = shift (eq_kernels_nhwc.h)."""
    mult = np.asarray(mult, dtype=np.int64).ravel()
    shift = np.asarray(shift, dtype=np.int64).ravel()
    if mult.shape != shift.shape:
        raise ValueError("pack_requant: mult and shift differ in length")
    if np.any((mult < 0) | (mult >= ACC_LIMIT)) or np.any((shift < -31) | (shift > 30)):
        raise ValueError("pack_requant: mult must be in [0, 2^31) and shift in [-31, 30]")
    out = np.zeros((mult.size, 4), dtype=np.int64)
    out[:, 0] = mult
    for i, s in enumerate(shift):
        if mult[i] == 0:  # MBQM(x, 0, s) = 0 for every s: the fast form with R = 1 gives it
            out[i, 1:] = (0, 0xC0000000, 0)
        elif s >= 0:
            out[i, 1:] = (-1, 0, s)
        else:
            r = -int(s)
            c = (1 << 30) + (1 << (30 + r))
            out[i, 1:] = (r - 1, c & 0xFFFFFFFF, c >> 32)
    return out


def pack_requant4(mult, shift, order=None) -> np.ndarray:
    """The _mve variants' requantization constants: per block of 4 channels (lanes), the
    vectors mult[4], neg_r[4] = min(shift, 0) and left[4] = max(shift, 0), int32 [n/4, 3, 4]
    (an eq_rq4 array). `order` permutes the channels into lanes first; channels beyond the
    input get multiplier 0. VQRDMULH, then a rounding right shift fixed up for negative
    ties (eq_nhwc_mve.h) gives MBQM exactly."""
    mult = np.asarray(mult, dtype=np.int64).ravel()
    shift = np.asarray(shift, dtype=np.int64).ravel()
    pack_requant(mult, shift)  # the same range checks
    n = len(order) if order is not None else _round_up(len(mult), 4)
    idx = np.asarray(order if order is not None else np.arange(n))
    m, s = np.zeros(n, np.int64), np.zeros(n, np.int64)
    live = idx < len(mult)
    m[live], s[live] = mult[idx[live]], shift[idx[live]]
    return np.stack([m, np.minimum(s, 0), np.maximum(s, 0)]).reshape(3, -1, 4).transpose(1, 0, 2).astype(np.int32)


def rq_initializer(rq: np.ndarray) -> str:
    """C initialiser of an `eq_rq` array (pack_requant's words) or, for an [n, 3, 4] array,
    of an `eq_rq4` array (pack_requant4)."""
    rq = np.asarray(rq)
    if rq.ndim == 3:
        vec = lambda v: "{" + ", ".join(str(int(e)) for e in v) + "}"  # noqa: E731
        return "{" + ", ".join("{" + ", ".join(vec(v) for v in blk) + "}" for blk in rq) + "}"
    return "{" + ", ".join(f"{{{int(m)}, {int(rs)}, {int(lo):#x}u, {int(hi)}}}" for m, rs, lo, hi in rq) + "}"


def rq_ctype(isa: str) -> str:
    """The C type of a variant's requantization constants."""
    return "eq_rq4" if isa == "mve" else "eq_rq"


# ---- folded biases -----------------------------------------------------------------------

def fold_bias(w2: np.ndarray, bias, x_zp: int) -> np.ndarray:
    """bias_eff[c] = bias[c] - x_zp * sum_k w2[c, k] modulo 2^32, as int32, for w2 [Co, K]
    (one output channel per row). The kernels add raw x * w to it modulo 2^32; the total,
    bias + sum (x - x_zp) * w, is inside int32 by the compiler's bound, so it comes out
    exact even where bias_eff or a partial sum does not fit (eq_kernels_nhwc.h)."""
    w2 = np.asarray(w2, dtype=np.int64)
    b = np.zeros(w2.shape[0], np.int64) if bias is None else np.asarray(bias, dtype=np.int64).ravel()
    eff = (b - int(x_zp) * w2.sum(axis=1)) & 0xFFFFFFFF
    return eff.astype(np.uint32).view(np.int32)


# ---- conv, pointwise, fully connected ------------------------------------------------------

@dataclass
class Packed:
    w: np.ndarray       # int8 (or int16 words for the DSP depthwise)
    bias: np.ndarray    # int32 bias_eff
    rq: np.ndarray      # pack_requant words


def _rows(w2: np.ndarray, isa: str, groups: int = 1) -> np.ndarray:
    """Weight rows [Co, K] in the variant's order (eq_kernels_nhwc.h, conv)."""
    co, k = w2.shape
    if isa == "c":
        return np.ascontiguousarray(w2, dtype=np.int8).ravel()
    if isa == "mve":  # per group, blocks of 4 channels x 16 columns, both zero padded
        k16 = _round_up(k, 16)
        parts = []
        for g in np.split(np.asarray(w2, np.int8), groups):
            rows = np.zeros((_round_up(g.shape[0], 4), k16), np.int8)
            rows[:g.shape[0], :k] = g
            parts.append(rows.reshape(-1, 4, k16 // 16, 16).transpose(0, 2, 1, 3).ravel())
        return np.concatenate(parts)
    # dsp: per group, channel pairs interleaved per 4-column block, K padded to 4
    k4 = _round_up(k, 4)
    parts = []
    for g in np.split(np.asarray(w2, np.int8), groups):
        rows = np.zeros((_round_up(g.shape[0], 2), k4), np.int8)
        rows[:g.shape[0], :k] = g
        parts.append(rows.reshape(-1, 2, k4 // 4, 4).transpose(0, 2, 1, 3).ravel())
    return np.concatenate(parts)


def _per_channel(a: np.ndarray, co: int, groups: int, isa: str) -> np.ndarray:
    """Bias rows padded like the weight rows: to pairs per group (dsp), to fours (mve)."""
    if isa == "c":
        return a
    unit = 2 if isa == "dsp" else 4
    parts = []
    for g in np.split(a, groups):
        parts += [g, np.zeros(_round_up(len(g), unit) - len(g), a.dtype)]
    return np.concatenate(parts)


def _requant_for(mult, shift, groups: int, isa: str) -> np.ndarray:
    """pack_requant (c), padded to pairs per group (dsp), or pack_requant4 per group (mve)."""
    if isa == "c":
        return pack_requant(mult, shift)
    parts = []
    for m, s in zip(np.split(np.ravel(mult), groups), np.split(np.ravel(shift), groups)):
        if isa == "mve":
            parts.append(pack_requant4(m, s))
        else:
            pad = _round_up(len(m), 2) - len(m)
            parts.append(pack_requant(np.concatenate([m, np.zeros(pad, np.int64)]),
                                      np.concatenate([s, -np.ones(pad, np.int64)])))
    return np.concatenate(parts)


def pack_conv(w: np.ndarray, bias, mult, shift, x_zp: int, groups: int = 1, isa: str = "c") -> Packed:
    """A QConv's constants for eq_nhwc_conv_s8_<isa> / eq_nhwc_pointwise_s8_<isa>.
    w [Co, Ci/groups, kH, kW] (or [Co, Ci/groups, L] for 1-D), as in the graph."""
    _check_isa(isa)
    w = np.asarray(w)
    if w.ndim == 3:
        w = w[:, :, None, :]
    co = w.shape[0]
    w2 = w.transpose(0, 2, 3, 1).reshape(co, -1)  # K ordered (kh, kw, ci): OHWI
    b = fold_bias(w2, bias, x_zp)
    return Packed(_rows(w2, isa, groups), _per_channel(b, co, groups, isa), _requant_for(mult, shift, groups, isa))


def pack_fc(w: np.ndarray, bias, mult, shift, x_zp: int, isa: str = "c") -> Packed:
    """A QGemm's constants for eq_nhwc_fc_s8_<isa>: w [Co, K] as in the graph."""
    _check_isa(isa)
    w2 = np.asarray(w).reshape(np.shape(w)[0], -1)
    b = fold_bias(w2, bias, x_zp)
    return Packed(_rows(w2, isa), _per_channel(b, w2.shape[0], 1, isa), _requant_for(mult, shift, 1, isa))


# ---- depthwise -----------------------------------------------------------------------------

# The _mve depthwise works on 8 channels as int16 lanes; VMULLB/VMULLT leave their products
# in two int32 vectors holding the even and the odd channels (eq_nhwc_mve.h), so a block's
# bias and rq come in this lane order.
DW_MVE_LANES = [0, 2, 4, 6, 1, 3, 5, 7]

def pack_depthwise(w: np.ndarray, bias, mult, shift, x_zp: int, isa: str = "c") -> Packed:
    """A depthwise QConv's constants for eq_nhwc_depthwise_s8_<isa> / eq_nhwc_dw3x3_s8_<isa>.
    w [Co, 1, kH, kW] (or [Co, 1, L])."""
    _check_isa(isa)
    w = np.asarray(w)
    if w.ndim == 3:
        w = w[:, :, None, :]
    co = w.shape[0]
    taps = w.reshape(co, -1)                     # [Co, kH*kW]
    b = fold_bias(taps, bias, x_zp)
    rq = pack_requant(mult, shift)
    if isa == "c":
        return Packed(np.ascontiguousarray(taps.T, dtype=np.int8).ravel(), b, rq)
    if isa == "mve":  # per 8 channels: the taps' 8 weights; bias and rq in the lanes' order
        c8 = _round_up(co, 8)
        t = np.zeros((c8, taps.shape[1]), np.int8)
        t[:co] = taps
        order = (np.arange(c8).reshape(-1, 8)[:, DW_MVE_LANES]).ravel()
        bias8 = np.concatenate([b, np.zeros(c8 - co, np.int32)])[order]
        return Packed(t.reshape(-1, 8, taps.shape[1]).transpose(0, 2, 1).ravel(), bias8,
                      pack_requant4(mult, shift, order))
    c4 = _round_up(co, 4)
    t = np.zeros((c4, taps.shape[1]), np.int64)
    t[:co] = taps
    quad = t.reshape(c4 // 4, 4, -1).transpose(0, 2, 1)          # [C/4, taps, 4]
    lo, hi = quad[..., [0, 1]], quad[..., [2, 3]]                 # (c0, c1) low, (c2, c3) high
    words = (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)                 # (c0|c2<<16), (c1|c3<<16)
    bias4 = np.zeros(c4, np.int32)
    bias4[:co] = b
    rq4 = np.concatenate([rq, np.repeat(pack_requant([0], [-1]), c4 - co, axis=0)])
    return Packed(words.astype(np.uint32).view(np.int32).ravel(), bias4, rq4)


# ---- add -------------------------------------------------------------------------------------

def pack_add(attrs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QAdd's (table_a, table_b, rq) for eq_nhwc_add_s8_<isa> (every variant): the tables
    are the integer reference's own input rescaling of each of the 256 int8 values."""
    ls = int(attrs.get("left_shift", 20))
    q = np.arange(-128, 128, dtype=np.int64)
    tables = [mbqm_checked((q - int(attrs[f"{s}_zp"])) << ls, int(attrs[f"{s}_mult"]), int(attrs[f"{s}_shift"]),
                           f"pack_add ({s})").astype(np.int32) for s in ("a", "b")]
    if max(np.abs(t).max() for t in tables) >= 1 << 28:
        raise ValueError("pack_add: an input rescaling reaches 2^28 (multiplier above 1/2?)")
    return tables[0], tables[1], pack_requant([attrs["y_mult"]], [attrs["y_shift"]])


def pack_add_rq(attrs: dict, isa: str) -> np.ndarray:
    """pack_add's rq for a variant: one eq_rq (c, dsp) or one eq_rq4 with four equal lanes (mve)."""
    if isa == "mve":
        return pack_requant4([attrs["y_mult"]] * 4, [attrs["y_shift"]] * 4)
    return pack_requant([attrs["y_mult"]], [attrs["y_shift"]])


# ---- scratch -------------------------------------------------------------------------------

ARM_POINTER_BYTES = 4


def dw3x3_zp_row_bytes(channels: int, isa: str) -> int:
    """Bytes of x_zp the depthwise 3x3 bodies read for a padded tap (dsp: channels rounded
    up to 4; mve: to 8, then 8 more for the predicated tail's over-read)."""
    return _round_up(channels, 8) + 8 if isa == "mve" else _round_up(channels, 4)


def scratch_bytes(kernel: str, isa: str, p: dict) -> int:
    """Bytes of scratch eq_nhwc_<kernel>_s8_<isa> asks for: the Python mirror of its
    _scratch_size companion (the memory planner's input). `p` holds the params struct's
    fields (eq_conv2d_params for conv/pointwise/depthwise/dw3x3, eq_pool_params for the
    pools; fc and add take none)."""
    _check_isa(isa)
    if isa == "c" or kernel in ("fc", "add", "maxpool"):
        return 0
    if kernel == "avgpool":
        return _round_up(p["channels"], 16) * 4 + 4 if isa == "mve" else 0
    cin_g, cout_g = p["in_c"] // p["groups"], p["out_c"] // p["groups"]
    taps = p["kernel_h"] * p["kernel_w"]
    if kernel == "conv":
        k = cin_g * taps
        return _round_up(k, 16) * 2 + 4 if isa == "mve" else _round_up(k, 4) * 4 + (cout_g + 1) // 2 * 16 + 4
    if kernel == "pointwise":
        return 0 if isa == "mve" else _round_up(p["in_c"], 4) * 4 + (p["out_c"] + 1) // 2 * 16 + 4
    if kernel == "depthwise":
        if isa == "mve":
            return _round_up(p["in_c"], 8) + 8 + taps * ARM_POINTER_BYTES + 4
        return taps * ARM_POINTER_BYTES + _round_up(p["in_c"], 4) + 4
    if kernel == "dw3x3":
        return _round_up(p["in_c"], 8) + 12 if isa == "mve" else _round_up(p["in_c"], 4) + 4
    raise ValueError(f"scratch_bytes: unknown kernel {kernel!r}")
