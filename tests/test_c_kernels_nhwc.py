"""The channels-last kernels (eq_kernels_nhwc.h) equal the integer reference bit for bit.

Host build (tests/_cbuild.py, the portable _c variants): every case of tests/_nhwc_cases.py
(shapes, strides, asymmetric pads, dilations, groups, channel multipliers, odd channel
counts, zero points at the extremes, clamps, per-channel multipliers at 2^30 and 2^31 - 1,
shifts from -31 to the largest the range allows), inputs transposed NCHW -> NHWC and the
reference output compared with np.array_equal. The default run takes a subset; the full
grid is marked slow. The DSP and MVE variants run the same cases on QEMU boards
(test_c_kernels_nhwc_qemu.py).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.runtime_c import packing

from . import _cbuild as cb
from . import _nhwc_cases as nc
from ._ckernels import M_EXTREMES

AddParams = cb._struct("eq_nhwc_add_params", ["size", "y_zp", "act_min", "act_max"])
STRUCTS = {"eq_conv2d_params": cb.ConvParams, "eq_fc_params": cb.FcParams, "eq_pool_params": cb.PoolParams,
           "eq_nhwc_add_params": AddParams}


def run_case(case: nc.Case, isa: str = "c") -> tuple[int, np.ndarray]:
    p = cb.make(STRUCTS[case.ptype], **case.fields)
    args = [np.ascontiguousarray(a) for _, a, _ in case.arrays]
    y = np.full(case.expected.shape, 0x55, np.int8)
    if case.scratch:
        size_fn = getattr(cb.library(), f"{case.fn(isa)}_scratch_size")
        size_fn.restype = ctypes.c_size_t
        size = size_fn(ctypes.byref(p))
        scratch = np.zeros(size + 1, np.uint8)[1:]  # misaligned on purpose: the kernel aligns it
        args.append(scratch if size else None)
    return cb.call(case.fn(isa), p, *args, y), y


def _check(case: nc.Case):
    st, y = run_case(case)
    assert st == 0
    assert np.array_equal(y, case.expected), case.fields


SUBSET = [c for kind in nc.BUILDERS for c in nc.BUILDERS[kind]("c", subset=True)]


@pytest.mark.parametrize("case", SUBSET, ids=lambda c: c.kernel)
def test_nhwc_kernels_subset(case):
    _check(case)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(nc.BUILDERS))
def test_nhwc_kernels_full_grid(kind):
    for case in nc.BUILDERS[kind]("c"):
        _check(case)


# ---- the requantization ------------------------------------------------------------------

def test_requant_exact_for_every_shift():
    """eq_rq_c (and its constants from pack_requant) equals MBQM for every shift the
    quantizer emits, multipliers at both ends, and inputs up to the largest each shift
    allows (x << max(shift, 0) fits int32), both signs, ties included."""
    rng = np.random.default_rng(17)
    shifts = np.repeat(np.arange(-31, 31), 600)
    m = rng.integers(1 << 30, 1 << 31, shifts.size)
    m[::3] = M_EXTREMES[0]
    m[1::3] = M_EXTREMES[1]
    m[2::97] = 0
    lim = (1 << (31 - np.maximum(shifts, 0))) - 1
    x = (rng.integers(-(1 << 31), 1 << 31, shifts.size) % (2 * lim + 1)) - lim
    x[::7], x[1::7], x[2::7], x[3::7] = lim[::7], -lim[1::7], 0, -1
    # exact ties of the second rounding: x * m / 2^31 near (k + 1/2) 2^R
    r = np.maximum(-shifts, 0)
    tie = ((rng.integers(-200, 200, shifts.size) * 2 + 1) << np.maximum(r - 1, 0)) << 31
    x[4::7] = np.clip(tie[4::7] // np.maximum(m[4::7], 1), -lim[4::7], lim[4::7])
    rq = nc.rq_words(packing.pack_requant(m, shifts))
    y = np.zeros(x.size, np.int32)
    cb.call("shim_nhwc_rq", x.size, cb.i32(x), np.ascontiguousarray(rq), y)
    assert np.array_equal(y, fp.multiply_by_quantized_multiplier(x, m, shifts))


def _vqrdmulh(a, b):
    """MVE VQRDMULH.S32 per lane: (2 a b + 2^31) >> 32, saturated (Arm's pseudocode)."""
    r = (2 * a * b + (1 << 31)) >> 32
    return np.clip(r, -(1 << 31), (1 << 31) - 1)


def _vrshl(x, n):
    """MVE VRSHL.S32 by a negative count -R: (x + 2^(R-1)) >> R in wider arithmetic; R = 0: x."""
    r = -n
    return np.where(r > 0, (x + (np.int64(1) << np.maximum(r - 1, 0))) >> r, x)


def test_mve_requant_formula_exact_for_every_shift():
    """The _mve kernels' requantization (eq_nhwc_mve.h: VSHL by left, VQRDMULH, the sign-bit
    fixup, VRSHL by neg_r) on pack_requant4's constants equals MBQM: the instruction
    semantics emulated in int64, on the inputs of test_requant_exact_for_every_shift."""
    rng = np.random.default_rng(18)
    shifts = np.repeat(np.arange(-31, 31), 600)
    m = rng.integers(1 << 30, 1 << 31, shifts.size)
    m[::3], m[1::3], m[2::97] = M_EXTREMES[0], M_EXTREMES[1], 0
    lim = (1 << (31 - np.maximum(shifts, 0))) - 1
    x = (rng.integers(-(1 << 31), 1 << 31, shifts.size) % (2 * lim + 1)) - lim
    x[::7], x[1::7], x[2::7], x[3::7] = lim[::7], -lim[1::7], 0, -1
    r = np.maximum(-shifts, 0)
    tie = ((rng.integers(-200, 200, shifts.size) * 2 + 1) << np.maximum(r - 1, 0)) << 31
    x[4::7] = np.clip(tie[4::7] // np.maximum(m[4::7], 1), -lim[4::7], lim[4::7])
    pad = (-len(m)) % 4
    rq4 = packing.pack_requant4(np.concatenate([m, np.zeros(pad, np.int64)]),
                                np.concatenate([shifts, np.zeros(pad, np.int64)]))
    mult, neg_r, left = (rq4[:, i, :].ravel()[:len(m)].astype(np.int64) for i in range(3))
    h = _vqrdmulh(x << left, mult)
    h = h + ((h & neg_r) >> 31)
    assert np.array_equal(_vrshl(h, neg_r), fp.multiply_by_quantized_multiplier(x, m, shifts))


def test_pack_requant_constants():
    rq = packing.pack_requant([1 << 30, 1 << 30, 5, 0], [-1, -31, 3, 0])
    assert rq[0].tolist() == [1 << 30, 0, 0xC0000000, 0]                    # 2^30 + 2^31
    assert rq[1].tolist() == [1 << 30, 30, 1 << 30, 1 << 29]                # 2^30 + 2^61
    assert rq[2].tolist() == [5, -1, 0, 3]
    assert rq[3].tolist() == [0, 0, 0xC0000000, 0]  # multiplier 0: the fast form gives 0
    with pytest.raises(ValueError):
        packing.pack_requant([1 << 31], [0])


def test_fold_bias():
    w = np.full((2, 1000), 127, np.int8)
    assert packing.fold_bias(w, [1, 2], -128).tolist() == [1 + 128 * 127000, 2 + 128 * 127000]
    assert packing.fold_bias(w, [5, 6], 100).tolist() == [5 - 12700000, 6 - 12700000]
    wrapped = packing.fold_bias(np.ones((1, 1), np.int8), [(1 << 31) - 1], -1)  # modulo 2^32
    assert wrapped.tolist() == [-(1 << 31)]


def test_pack_conv_dsp_pairs_channels_per_4_columns():
    w = np.arange(3 * 5, dtype=np.int8).reshape(3, 5, 1, 1)  # Co 3, K 5 -> K4 8, pairs 2
    pk = packing.pack_conv(w, None, [1 << 30] * 3, [-1] * 3, 0, 1, "dsp")
    assert pk.w.reshape(2, 2, 2, 4)[0, 0].tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]]
    assert pk.w.reshape(2, 2, 2, 4)[0, 1].tolist() == [[4, 0, 0, 0], [9, 0, 0, 0]]
    assert pk.w.reshape(2, 2, 2, 4)[1, 0].tolist() == [[10, 11, 12, 13], [0, 0, 0, 0]]
    assert pk.bias.shape == (4,) and pk.rq.shape == (4, 4)


def test_isa_for_cpu():
    assert [packing.isa_for_cpu(c) for c in ("cortex-m55", "cortex-m7", "cortex-m4", "cortex-m33", "host")] == \
        ["mve", "dsp", "dsp", "dsp", "c"]


def test_kernels_refuse_bad_calls_before_writing():
    case = nc.pointwise_cases("c", subset=True)[0]
    for bad in ({"kernel_h": 3}, {"out_h": 5}, {"x_zp": 200}, {"groups": 2}):
        f = dict(case.fields, **bad)
        st, y = run_case(nc.Case(case.kernel, case.ptype, f, case.arrays, case.scratch, case.expected))
        assert st != 0 and (y == 0x55).all(), bad
    bad_rq = [(r, a.copy() if r == "rq" else a, t) for r, a, t in case.arrays]
    bad_rq[3][1][0, 1] = 31  # rs out of range
    st, y = run_case(nc.Case(case.kernel, case.ptype, case.fields, bad_rq, case.scratch, case.expected))
    assert st == 1 and (y == 0x55).all()


def test_every_nhwc_kernel_has_its_three_variants():
    """eq_kernels_nhwc.h's kernels: one file per op and ISA variant, the portable one (and its
    scratch companion) built on the host, and packing/scratch mirrors for each."""
    ops = ("conv", "pointwise", "depthwise", "dw3x3", "fc", "add", "maxpool", "avgpool")
    header = (cb.INCLUDE / "eq_kernels_nhwc.h").read_text()
    for op in ops:
        assert f"eq_nhwc_{op}_s8" in header, op
        for isa in packing.ISAS:
            assert (cb.SRC / f"eq_nhwc_{op}_s8_{isa}.c").is_file(), (op, isa)
        getattr(cb.library(), f"eq_nhwc_{op}_s8_c")
        getattr(cb.library(), f"eq_nhwc_{op}_s8_c_scratch_size")
