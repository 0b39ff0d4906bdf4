"""The C runtime's pooling, softmax and data-movement kernels equal the integer reference
bit for bit (np.array_equal), on parametrised grids with fixed seeds (as test_c_kernels.py)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.reference import run_node
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.softmax import softmax_params

from . import _cbuild as cb
from ._ckernels import node, rand_i8


# ---- pooling ---------------------------------------------------------------------------

# (N, C, H, W, kernel, strides, pads, dilations)
POOL_CASES = [
    (1, 3, 8, 8, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
    (2, 5, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 4, 9, 6, (3, 2), (1, 2), (1, 0, 2, 1), (1, 1)),      # asymmetric pads
    (1, 3, 10, 10, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),    # dilation
    (2, 7, 5, 5, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1)),      # global
    (1, 2, 6, 6, (4, 4), (3, 3), (2, 1, 1, 2), (1, 1)),      # big pads: few inside taps
]


def _pool_params(case, ref, **kw):
    n, c, h, w, k, st, pads, dil = case
    return cb.make(cb.PoolParams, batch=n, channels=c, in_h=h, in_w=w, out_h=ref.shape[2],
                   out_w=ref.shape[3], kernel_h=k[0], kernel_w=k[1], stride_h=st[0],
                   stride_w=st[1], pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2],
                   pad_right=pads[3], dilation_h=dil[0], dilation_w=dil[1], **kw)


@pytest.mark.parametrize("act", [(-128, 127), (-5, 60)])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool(case, act):
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rand_i8(rng, case[:4])
    nd = node("QMaxPool", kernel=list(case[4]), strides=list(case[5]), pads=list(case[6]),
              dilations=list(case[7]), act_min=act[0], act_max=act[1])
    ref = run_node(nd, [x])
    y = np.zeros_like(ref)
    p = _pool_params(case, ref, count_include_pad=0, x_zp=0, act_min=act[0], act_max=act[1])
    assert cb.call("eq_maxpool_s8", p, x, y) == 0
    assert np.array_equal(y, ref)


@pytest.mark.parametrize("include_pad,x_zp", [(0, 0), (1, -128), (1, 127), (1, 9)])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool(case, include_pad, x_zp):
    rng = np.random.default_rng(hash(case) % 2**32 + include_pad)
    x = rand_i8(rng, case[:4])
    if case[2] == 10:
        x[:] = np.int8(-128)  # the most negative sums
    k = case[4]
    recip, rshift = avgpool_recips(*k)
    nd = node("QAvgPool", kernel=list(k), strides=list(case[5]), pads=list(case[6]),
              dilations=list(case[7]), count_include_pad=include_pad, x_zp=x_zp,
              recip=recip, rshift=rshift, act_min=-128, act_max=127)
    ref = run_node(nd, [x])
    y = np.zeros_like(ref)
    p = _pool_params(case, ref, count_include_pad=include_pad, x_zp=x_zp, act_min=-128, act_max=127)
    assert cb.call("eq_avgpool_s8", p, x, cb.i32(recip), cb.i32(rshift), y) == 0
    assert np.array_equal(y, ref)


def test_pool_empty_window_rejected():
    x = np.zeros((1, 1, 2, 2), np.int8)
    y = np.full((1, 1, 3, 3), 7, np.int8)
    case = (1, 1, 2, 2, (1, 1), (1, 1), (1, 1, 0, 0), (1, 1))  # first row/col all padding
    ref = np.zeros((1, 1, 3, 3), np.int8)
    p = _pool_params(case, ref, count_include_pad=0, x_zp=0, act_min=-128, act_max=127)
    assert cb.call("eq_maxpool_s8", p, x, y) == 2 and (y == 7).all()


# ---- softmax ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale,beta", [(1 / 256, 1.0), (0.05, 1.0), (0.1, 1.0), (0.5, 1.0),
                                        (2.0, 1.0), (0.02, 3.0), (1e-5, 1.0)])
@pytest.mark.parametrize("shape,axis", [((4, 10), -1), ((2, 1), -1), ((1, 6, 3, 2), 1),
                                        ((3, 600), -1), ((1, 1001), -1)])
def test_softmax(scale, beta, shape, axis):
    rng = np.random.default_rng(int(scale * 1e6) + shape[-1])
    x = rand_i8(rng, shape)
    if shape[-1] > 500:
        x[0] = np.int8(100)  # a flat row: sums >= 2^28, the exponent > 31 branch
        x[0, 0] = 101
    prm = softmax_params(scale, beta)
    ref = run_node(node("QSoftmax", axis=axis, beta=beta, **prm), [x])
    ax = axis % len(shape)
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    inner = int(np.prod(shape[ax + 1:], dtype=np.int64))
    y = np.zeros_like(ref)
    p = cb.make(cb.SoftmaxParams, outer=outer, depth=shape[ax], inner=inner, **prm)
    assert cb.call("eq_softmax_s8", p, x, y) == 0
    assert np.array_equal(y, ref)


# ---- data movement ---------------------------------------------------------------------

@pytest.mark.parametrize("shapes,axis", [
    ([(1, 3, 4, 4), (1, 5, 4, 4), (1, 1, 4, 4)], 1),
    ([(2, 3), (1, 3)], 0),
    ([(2, 3, 2, 5), (2, 3, 2, 1)], 3),
    ([(2, 7)], 1),
    ([(1, 2, 3), (1, 2, 3), (1, 2, 3)], -1),
])
def test_concat(shapes, axis):
    rng = np.random.default_rng(len(shapes) * 10 + axis)
    xs = [rand_i8(rng, s) for s in shapes]
    ref = run_node(node("QConcat", axis=axis), xs)
    ax = axis % len(shapes[0])
    outer = int(np.prod(shapes[0][:ax], dtype=np.int64))
    inner = int(np.prod(shapes[0][ax + 1:], dtype=np.int64))
    chunk = cb.i32([s[ax] * inner for s in shapes])
    ptrs = (cb.ctypes.c_void_p * len(xs))(*[x.ctypes.data for x in xs])
    y = np.zeros_like(ref)
    assert cb.call("eq_concat_s8", len(xs), ptrs, chunk, outer, y) == 0
    assert np.array_equal(y, ref)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (1, 3, 4, 5), (2, 3, 1, 4, 2), (2, 1, 3, 2, 2, 3)])
def test_transpose(shape):
    rng = np.random.default_rng(len(shape))
    x = rand_i8(rng, shape)
    perms = [list(rng.permutation(len(shape))) for _ in range(4)] + [list(range(len(shape)))]
    if len(shape) == 4:
        perms.append([0, 2, 3, 1])  # NCHW -> NHWC
    for perm in perms:
        ref = run_node(node("QTranspose", perm=perm), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.TransposeParams, rank=len(shape), in_dims=list(shape), perm=perm)
        assert cb.call("eq_transpose_s8", p, x, y) == 0
        assert np.array_equal(y, ref), perm


@pytest.mark.parametrize("shape", [(5,), (2, 3), (1, 3, 4, 5), (2, 1, 3, 2, 2)])
@pytest.mark.parametrize("value", [-128, 127, 0])
def test_pad(shape, value):
    rng = np.random.default_rng(len(shape) + value + 128)
    x = rand_i8(rng, shape)
    r = len(shape)
    for trial in range(4):
        pads = list(rng.integers(0, 3, 2 * r)) if trial else [0] * (2 * r)
        ref = run_node(node("QPad", pads=pads, value=value), [x])
        y = np.zeros_like(ref)
        p = cb.make(cb.PadParams, rank=r, in_dims=list(shape), pad_begin=pads[:r],
                    pad_end=pads[r:], value=value)
        assert cb.call("eq_pad_s8", p, x, y) == 0
        assert np.array_equal(y, ref), pads


def test_reshape_copy():
    x = np.arange(-60, 60, dtype=np.int8)
    y = np.zeros_like(x)
    assert cb.call("eq_reshape_s8", x.size, x, y) == 0 and np.array_equal(x, y)
    ref = run_node(node("QReshape", shape=[2, 0, -1]), [x.reshape(3, 4, 10)])
    assert ref.shape == (2, 4, 15) and np.array_equal(ref.ravel(), x)
