"""Cases for the channels-last kernels (eq_kernels_nhwc.h), shared by the host tests
(tests/test_c_kernels_nhwc.py, ctypes) and the QEMU board tests
(tests/test_c_kernels_nhwc_qemu.py, a self-checking firmware).

A case is built from a random NCHW layer, its integer reference output (edgeq/intref, the
golden semantics), and the constants packed for one kernel variant (edgeq.runtime_c.packing);
the expected bytes are the reference output transposed to NHWC.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq import fixedpoint as fp
from edgeq.reference import run_node
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.conv import conv_accumulate
from edgeq.runtime_c import packing

from ._ckernels import M_EXTREMES, mults_shifts, node, rand_i8


@dataclass
class Case:
    kernel: str                                   # eq_nhwc_<kernel>_s8_<isa>
    ptype: str                                    # params struct (C type)
    fields: dict                                  # its field values
    arrays: list[tuple[str, np.ndarray, str]]     # (role, data, C type), in call order
    scratch: bool                                 # the call takes a scratch pointer
    expected: np.ndarray                          # NHWC bytes

    def fn(self, isa: str) -> str:
        return f"eq_nhwc_{self.kernel}_s8_{isa}"


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1) if a.ndim == 4 else a)


def rq_words(rq: np.ndarray) -> np.ndarray:
    """pack_requant's words as the int32 memory image of an eq_rq array."""
    return (np.asarray(rq, np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32).reshape(-1, 4)


# (N, Ci, H, W, Co, kH, kW, strides, pads (t, l, b, r), dilations, group)
CONV = [
    (1, 3, 8, 8, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),       # odd channels
    (2, 5, 9, 7, 7, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 1),       # stride 2, asymmetric pads
    (1, 4, 11, 10, 3, 3, 2, (1, 2), (2, 1, 2, 0), (2, 3), 1),     # dilation, rectangular kernel
    (1, 6, 7, 7, 9, 2, 3, (1, 1), (0, 2, 1, 0), (2, 1), 3),       # grouped, odd Co/g
    (1, 2, 3, 4, 3, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1),       # kernel wider than the input
    (1, 16, 6, 6, 8, 3, 3, (2, 2), (0, 0, 1, 1), (1, 1), 1),      # TF "same" stride 2
    (1, 1, 12, 6, 8, 4, 3, (2, 2), (1, 1, 2, 1), (1, 1), 1),      # one input channel (kws01-like)
    (1, 8, 5, 5, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),       # grouped, channels % 4 == 0
    (1, 12, 4, 9, 16, 1, 3, (1, 1), (0, 1, 0, 1), (1, 1), 1),     # 1xN
]
POINTWISE = [  # (N, Ci, H, W, Co, stride)
    (1, 8, 6, 6, 16, 1), (1, 3, 5, 4, 5, 1), (2, 17, 3, 5, 7, 1), (1, 16, 7, 7, 32, 2),
    (1, 64, 2, 3, 9, 1), (1, 5, 1, 1, 3, 1), (1, 40, 4, 1, 128, 1), (1, 32, 5, 5, 64, 2),
]
DEPTHWISE = [  # (N, C, H, W, multiplier, kH, kW, strides, pads, dilations)
    (1, 8, 7, 7, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 5, 6, 9, 2, 3, 3, (2, 1), (0, 1, 1, 0), (1, 1)),
    (2, 7, 9, 8, 1, 5, 3, (1, 2), (2, 1, 2, 1), (2, 1)),
    (1, 16, 10, 1, 1, 3, 1, (1, 1), (0, 0, 0, 0), (1, 1)),      # sww01-like Nx1
    (1, 12, 15, 1, 1, 10, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (1, 3, 5, 5, 3, 2, 2, (1, 1), (1, 0, 0, 1), (1, 1)),
]
DW3X3 = [  # (N, C, H, W, strides, pads)
    (1, 8, 7, 7, (1, 1), (1, 1, 1, 1)), (1, 16, 8, 8, (2, 2), (0, 0, 1, 1)), (1, 7, 5, 6, (1, 1), (1, 1, 1, 1)),
    (2, 12, 9, 5, (2, 1), (1, 0, 1, 1)), (1, 4, 3, 3, (1, 1), (0, 0, 0, 0)), (1, 20, 6, 5, (2, 2), (1, 1, 1, 1)),
    (1, 64, 5, 4, (1, 1), (1, 1, 1, 1)), (1, 6, 1, 4, (1, 1), (1, 1, 1, 1)),
]
FC = [(1, 1, 1), (1, 10, 7), (3, 33, 5), (2, 257, 11), (1, 640, 128), (1, 8, 128)]
POOL = [  # (N, C, H, W, kH, kW, strides, pads, dilations, count_include_pad)
    (1, 8, 6, 6, 3, 3, (2, 2), (1, 1, 1, 0), (1, 1), 0), (1, 5, 7, 5, 2, 2, (2, 2), (0, 0, 0, 0), (1, 1), 0),
    (2, 3, 9, 9, 3, 3, (2, 2), (1, 1, 1, 0), (1, 1), 1), (1, 64, 8, 8, 8, 8, (8, 8), (0, 0, 0, 0), (1, 1), 0),
    (1, 7, 6, 7, 3, 2, (1, 1), (1, 0, 1, 1), (2, 2), 0), (1, 16, 25, 5, 25, 5, (25, 5), (0, 0, 0, 0), (1, 1), 0),
]
ZPS = [(0, 0), (-128, 127), (127, -128), (5, -3)]


def _act(rng, y_zp: int, variant: int) -> tuple[int, int]:
    """Full range, a fused Relu, or a narrow clamp."""
    return [(-128, 127), (max(-128, y_zp), 127), (-20, 35)][variant % 3]


def _conv_layer(x, wt, bias, strides, pads, dil, group, zps, act, rng):
    nd = node("QConv", strides=list(strides), pads=list(pads), dilations=list(dil), group=group,
              x_zp=zps[0], y_zp=zps[1], act_min=act[0], act_max=act[1])
    m, s = mults_shifts(rng, wt.shape[0], np.abs(conv_accumulate(nd, x, wt, bias, 2)).max(axis=(0, 2, 3)))
    return nd, m, s, run_node(nd, [x, wt, bias, m, s])


def _conv_fields(x, ref, wt, strides, pads, dil, group, zps, act) -> dict:
    n, ci, h, w = x.shape
    return dict(batch=n, in_c=ci, in_h=h, in_w=w, out_c=ref.shape[1], out_h=ref.shape[2], out_w=ref.shape[3],
                kernel_h=wt.shape[2], kernel_w=wt.shape[3], stride_h=strides[0], stride_w=strides[1],
                pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                dilation_h=dil[0], dilation_w=dil[1], groups=group, x_zp=zps[0], y_zp=zps[1],
                act_min=act[0], act_max=act[1])


def _conv_case(kernel, x, wt, bias, strides, pads, dil, group, zps, act, rng, isa) -> Case:
    nd, m, s, ref = _conv_layer(x, wt, bias, strides, pads, dil, group, zps, act, rng)
    if kernel in ("depthwise", "dw3x3"):
        pk = packing.pack_depthwise(wt, bias, m, s, zps[0], isa)
    else:
        pk = packing.pack_conv(wt, bias, m, s, zps[0], group, isa)
    arrays = [("x", nhwc(x), "int8_t"), ("w", pk.w, "int32_t" if pk.w.dtype == np.int32 else "int8_t"),
              ("b", pk.bias, "int32_t"), ("rq", rq_words(pk.rq), "int32_t")]
    return Case(kernel, "eq_conv2d_params", _conv_fields(x, ref, wt, strides, pads, dil, group, zps, act),
                arrays, True, nhwc(ref))


def conv_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    for i, (n, ci, h, w, co, kh, kw, st, pads, dil, g) in enumerate(CONV):
        for j, zps in enumerate(ZPS[:2] if subset else ZPS):
            rng = np.random.default_rng(1000 + 10 * i + j)
            x, wt = rand_i8(rng, (n, ci, h, w)), rand_i8(rng, (co, ci // g, kh, kw), -127, 127)
            k = ci // g * kh * kw
            bias = rng.integers(-8000 * k, 8000 * k, co).astype(np.int32)
            out.append(_conv_case("conv", x, wt, bias, st, pads, dil, g, zps, _act(rng, zps[1], i + j), rng, isa))
    return out


def huge_bias_case(isa: str) -> Case:
    """A channel whose bias sits at the compiler's bound (|bias| + K * 255 * 127 = 2^31 - 1,
    as in vww01's saturated channels): the kernels' partial sums leave int32 and wrap."""
    rng = np.random.default_rng(99)
    x = np.full((1, 64, 3, 3), 127, np.int8)
    x[0, :, 0, 0] = -128
    wt = rng.integers(100, 128, (2, 64, 1, 1)).astype(np.int8)
    edge = (1 << 31) - 1 - 64 * 255 * 127
    bias = np.array([edge, -edge], np.int32)
    return _conv_case("pointwise", x, wt, bias, (1, 1), (0, 0, 0, 0), (1, 1), 1, (-128, 3), (-128, 127), rng, isa)


def pointwise_cases(isa: str, subset: bool = False) -> list[Case]:
    out = [huge_bias_case(isa)]
    for i, (n, ci, h, w, co, s) in enumerate(POINTWISE):
        for j, zps in enumerate(ZPS[:2] if subset else ZPS):
            rng = np.random.default_rng(2000 + 10 * i + j)
            x, wt = rand_i8(rng, (n, ci, h, w)), rand_i8(rng, (co, ci, 1, 1), -127, 127)
            bias = rng.integers(-9000 * ci, 9000 * ci, co).astype(np.int32)
            out.append(_conv_case("pointwise", x, wt, bias, (s, s), (0, 0, 0, 0), (1, 1), 1, zps,
                                  _act(rng, zps[1], i + j), rng, isa))
    return out


def depthwise_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    for i, (n, c, h, w, mult, kh, kw, st, pads, dil) in enumerate(DEPTHWISE):
        for j, zps in enumerate(ZPS[:2] if subset else ZPS):
            rng = np.random.default_rng(3000 + 10 * i + j)
            x, wt = rand_i8(rng, (n, c, h, w)), rand_i8(rng, (c * mult, 1, kh, kw), -127, 127)
            bias = rng.integers(-20000, 20000, c * mult).astype(np.int32)
            out.append(_conv_case("depthwise", x, wt, bias, st, pads, dil, c, zps, _act(rng, zps[1], i + j), rng, isa))
    return out


def dw3x3_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    for i, (n, c, h, w, st, pads) in enumerate(DW3X3):
        for j, zps in enumerate(ZPS[:2] if subset else ZPS):
            rng = np.random.default_rng(4000 + 10 * i + j)
            x, wt = rand_i8(rng, (n, c, h, w)), rand_i8(rng, (c, 1, 3, 3), -127, 127)
            bias = rng.integers(-20000, 20000, c).astype(np.int32)
            out.append(_conv_case("dw3x3", x, wt, bias, st, pads, (1, 1), c, zps, _act(rng, zps[1], i + j), rng, isa))
    return out


def fc_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    for i, (n, k, co) in enumerate(FC):
        for j, zps in enumerate(ZPS[:2] if subset else ZPS):
            rng = np.random.default_rng(5000 + 10 * i + j)
            x, wt = rand_i8(rng, (n, k)), rand_i8(rng, (co, k), -127, 127)
            bias = rng.integers(-5000, 5000, co).astype(np.int32)
            act = _act(rng, zps[1], i + j)
            nd = node("QGemm", x_zp=zps[0], y_zp=zps[1], act_min=act[0], act_max=act[1])
            acc = (x.astype(np.int64) - zps[0]) @ wt.astype(np.int64).T + bias
            m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
            ref = run_node(nd, [x, wt, bias, m, s])
            pk = packing.pack_fc(wt, bias, m, s, zps[0], isa)
            out.append(Case("fc", "eq_fc_params",
                            dict(batch=n, in_features=k, out_features=co, x_zp=zps[0], y_zp=zps[1],
                                 act_min=act[0], act_max=act[1]),
                            [("x", x, "int8_t"), ("w", pk.w, "int8_t"), ("b", pk.bias, "int32_t"),
                             ("rq", rq_words(pk.rq), "int32_t")], True, ref))
    return out


def add_attrs(rng, zps) -> dict:
    sa, sb, sy = np.exp(rng.uniform(np.log(0.005), np.log(0.5), 3))
    twice = 2 * max(sa, sb)
    am, ash = fp.quantize_multiplier(sa / twice)
    bm, bsh = fp.quantize_multiplier(sb / twice)
    ym, ysh = fp.quantize_multiplier(twice / ((1 << 20) * sy))
    return dict(a_zp=zps[0], b_zp=zps[1], y_zp=zps[2], left_shift=20, a_mult=am, a_shift=ash,
                b_mult=bm, b_shift=bsh, y_mult=ym, y_shift=ysh, act_min=-128, act_max=127)


ADD_EXTREMES = [(1 << 30, (1 << 31) - 1, (1 << 31) - 1, -31), (M_EXTREMES[1], 1 << 30, 1 << 30, -12),
                (M_EXTREMES[1], M_EXTREMES[1], M_EXTREMES[1], 2)]


def add_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    shapes = [(1, 4, 3, 3), (1, 16, 8, 8), (1, 1, 1, 5), (2, 3, 5, 7)]
    for i, shape in enumerate(shapes[:2] if subset else shapes):
        for j, zps in enumerate([(0, 0, 0), (-128, 127, -128), (127, -128, 127), (3, -9, 20)]):
            rng = np.random.default_rng(6000 + 10 * i + j)
            a, b = rand_i8(rng, shape), rand_i8(rng, shape)
            at = add_attrs(rng, zps)
            if j == 3:
                at["act_min"] = 20  # a fused Relu
            if i == 1 and j < 3:  # multiplier extremes
                am, bm, ym, ysh = ADD_EXTREMES[j]
                at.update(a_mult=am, a_shift=0, b_mult=bm, b_shift=-1, y_mult=ym, y_shift=ysh)
            ref = run_node(node("QAdd", **at), [a, b])
            ta, tb, _ = packing.pack_add(at)
            rq = packing.pack_add_rq(at, isa)
            out.append(Case("add", "eq_nhwc_add_params",
                            dict(size=a.size, y_zp=at["y_zp"], act_min=at["act_min"], act_max=at["act_max"]),
                            [("a", nhwc(a), "int8_t"), ("c", nhwc(b), "int8_t"), ("ta", ta, "int32_t"),
                             ("tb", tb, "int32_t"), ("rq", rq_words(rq), "int32_t")], False, nhwc(ref)))
    return out


def pool_cases(isa: str, subset: bool = False) -> list[Case]:
    out = []
    for i, (n, c, h, w, kh, kw, st, pads, dil, cip) in enumerate(POOL[:3] if subset else POOL):
        for kind in ("maxpool", "avgpool"):
            rng = np.random.default_rng(7000 + 10 * i + (kind == "avgpool"))
            x = rand_i8(rng, (n, c, h, w))
            act = [(-128, 127), (-5, 127), (-100, 60)][i % 3]
            attrs = dict(kernel=[kh, kw], strides=list(st), pads=list(pads), dilations=list(dil),
                         act_min=act[0], act_max=act[1])
            arrays = [("x", nhwc(x), "int8_t")]
            if kind == "avgpool":
                recip, rshift = avgpool_recips(kh, kw)
                attrs.update(count_include_pad=cip, x_zp=-7, recip=recip, rshift=rshift)
                arrays += [("r", np.array(recip, np.int32), "int32_t"), ("s", np.array(rshift, np.int32), "int32_t")]
            ref = run_node(node("QAvgPool" if kind == "avgpool" else "QMaxPool", **attrs), [x])
            fields = dict(batch=n, channels=c, in_h=h, in_w=w, out_h=ref.shape[2], out_w=ref.shape[3],
                          kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1], pad_top=pads[0],
                          pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3], dilation_h=dil[0],
                          dilation_w=dil[1], count_include_pad=cip if kind == "avgpool" else 0,
                          x_zp=-7 if kind == "avgpool" else 0, act_min=act[0], act_max=act[1])
            out.append(Case(kind, "eq_pool_params", fields, arrays, kind == "avgpool", nhwc(ref)))
    return out


BUILDERS = {"conv": conv_cases, "pointwise": pointwise_cases, "depthwise": depthwise_cases, "dw3x3": dw3x3_cases,
            "fc": fc_cases, "add": add_cases, "pool": pool_cases}


def all_cases(isa: str, subset: bool = False) -> list[Case]:
    return [c for build in BUILDERS.values() for c in build(isa, subset)]
