"""int4 weights end to end (issue 5 part 1): quantizer, packing, s4 C kernels, codegen, QEMU.

The s4 kernels (runtime_c/src/eq_*_s4.c) must give the integer reference's bytes exactly
(np.array_equal): an int4 layer is an int8 layer whose weights lie in [-7, 7], so the
reference needs no int4 code; only the C weight layout differs (two values per byte).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeq.codegen.carray import pack_s4, s4_bytes
from edgeq.intref import run_node
from edgeq.intref.conv import conv_accumulate

from . import _cbuild as cb
from .test_c_kernels import mults_shifts, node, rand_i8, scratch_for

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")


# ---- packing -----------------------------------------------------------------------------

def test_pack_s4_layout():
    # low nibble first, each row padded to a whole byte (eq_kernels.h's example)
    assert pack_s4(np.array([[-1, 7, -8]])).tolist() == [[0x7F, 0x08]]
    assert pack_s4(np.array([[1, 2], [-7, 0]])).tolist() == [[0x21], [0x09]]
    w = np.arange(-7, 8).reshape(3, 5)
    p = pack_s4(w)
    assert p.shape == (3, 3) and p.dtype == np.uint8 and s4_bytes(w.shape) == p.size
    lo = ((p & 0xF).astype(np.int16) ^ 8) - 8
    hi = ((p >> 4).astype(np.int16) ^ 8) - 8
    back = np.stack([lo, hi], axis=2).reshape(3, 6)[:, :5]
    assert np.array_equal(back, w) and (hi[:, -1] == 0).all()
    with pytest.raises(ValueError):
        pack_s4(np.array([[8]]))


# ---- C kernels against the integer reference ---------------------------------------------

# (N, Ci, H, W, Co, kH, kW, strides, pads (t, l, b, r), dilations, group); K odd in most,
# so every row ends in a padding nibble; K >= 8 covers the DSP path's 8-value blocks
S4_CONV_CASES = [
    (1, 3, 8, 8, 5, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),        # pointwise, K = 3
    (2, 5, 9, 7, 7, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 1),        # stride 2, asym pads, K = 45
    (1, 7, 9, 9, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 7),        # depthwise, K = 9
    (3, 3, 8, 6, 6, 3, 3, (2, 1), (0, 1, 1, 0), (1, 1), 3),        # depthwise, multiplier 2
    (1, 6, 7, 7, 9, 2, 3, (1, 1), (0, 2, 1, 0), (2, 1), 3),        # grouped, dilation, K = 12
    (1, 16, 5, 5, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),       # pointwise, K = 16
    (1, 17, 6, 5, 3, 3, 1, (2, 1), (1, 0, 0, 0), (1, 1), 1),       # K = 51: blocks + odd tail
    (2, 6, 3, 5, 4, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 2),        # grouped pointwise, odd H*W
]


@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (5, -3)])
@pytest.mark.parametrize("case", S4_CONV_CASES)
def test_conv2d_s4(case, zps):
    n, ci, h, w, co, kh, kw, st, pads, dil, g = case
    x_zp, y_zp = zps
    rng = np.random.default_rng(abs(hash((case, zps, "s4"))) % 2**32)
    x = rand_i8(rng, (n, ci, h, w))
    wt = rand_i8(rng, (co, ci // g, kh, kw), -7, 7)
    wt.flat[:2] = (-7, 7)  # the extremes appear
    k_taps = ci // g * kh * kw
    bias = rng.integers(-500 * k_taps, 500 * k_taps, co).astype(np.int32)
    act = (max(-128, y_zp), 127) if zps == (5, -3) else (-128, 127)
    nd = node("QConv", strides=list(st), pads=list(pads), dilations=list(dil), group=g,
              x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
    acc = conv_accumulate(nd, x, wt, bias, 2)
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=(0, 2, 3)))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.ConvParams, batch=n, in_c=ci, in_h=h, in_w=w, out_c=co, out_h=ref.shape[2],
                out_w=ref.shape[3], kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1],
                pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                dilation_h=dil[0], dilation_w=dil[1], groups=g, x_zp=x_zp, y_zp=y_zp,
                act_min=act[0], act_max=act[1])
    packed = np.ascontiguousarray(pack_s4(wt))
    assert packed.size == co * ((k_taps + 1) // 2)
    for scratch in (None, scratch_for("eq_conv2d_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_conv2d_s4", p, x, packed, bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)
    size = cb.library().eq_conv2d_s4_scratch_size
    size.restype = cb.ctypes.c_size_t
    assert size(cb.ctypes.byref(p)) == 2 * k_taps + 4


def test_conv2d_s4_no_bias_and_bad_args():
    rng = np.random.default_rng(4)
    x = rand_i8(rng, (1, 3, 5, 5))
    wt = rand_i8(rng, (2, 3, 3, 3), -8, 7)  # -8 is a valid nibble too
    m, s = (np.asarray(v, np.int32) for v in mults_shifts(rng, 2, np.full(2, 27 * 255 * 8)))
    nd = node("QConv", strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
              x_zp=-7, y_zp=3, act_min=-128, act_max=127)
    ref = run_node(nd, [x, wt, None, m, s])
    kw = dict(batch=1, in_c=3, in_h=5, in_w=5, out_c=2, out_h=5, out_w=5, kernel_h=3,
              kernel_w=3, stride_h=1, stride_w=1, pad_top=1, pad_left=1, pad_bottom=1,
              pad_right=1, dilation_h=1, dilation_w=1, groups=1, x_zp=-7, y_zp=3,
              act_min=-128, act_max=127)
    y = np.zeros_like(ref)
    packed = pack_s4(wt)
    assert cb.call("eq_conv2d_s4", cb.make(cb.ConvParams, **kw), x, packed, None, m, s, None, y) == 0
    assert np.array_equal(y, ref)
    untouched = np.full_like(ref, 99)
    for bad, code in (({"out_h": 4}, 2), ({"groups": 2}, 2), ({"y_zp": -129}, 1)):
        assert cb.call("eq_conv2d_s4", cb.make(cb.ConvParams, **{**kw, **bad}), x, packed,
                       None, m, s, None, untouched) == code, bad
    assert (untouched == 99).all()


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 10, 7), (3, 33, 5), (2, 257, 11), (1, 16, 4)])
@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128)])
def test_fully_connected_s4(shape, zps):
    n, k, co = shape
    rng = np.random.default_rng(2000 + k * 31 + co + zps[0])
    x = rand_i8(rng, (n, k))
    wt = rand_i8(rng, (co, k), -7, 7)
    bias = rng.integers(-5000, 5000, co).astype(np.int32)
    nd = node("QGemm", x_zp=zps[0], y_zp=zps[1], act_min=-128, act_max=127)
    acc = (x.astype(np.int64) - zps[0]) @ wt.astype(np.int64).T + bias
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.FcParams, batch=n, in_features=k, out_features=co, x_zp=zps[0], y_zp=zps[1],
                act_min=-128, act_max=127)
    packed = np.ascontiguousarray(pack_s4(wt))
    for scratch in (None, scratch_for("eq_fully_connected_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_fully_connected_s4", p, x, packed, bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)
