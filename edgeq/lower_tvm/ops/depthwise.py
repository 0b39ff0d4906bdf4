"""Depthwise QConv (group == C, channel multiplier M = Co / C) on NHWC, vectorized over
channels.

acc[n, oh, ow, co] = sum_{kh, kw} x[n, oh*sh + kh*dh, ow*sw + kw*dw, co / M] * w[kh, kw, co]
with the zero point folded as in ops/conv.py (pad with x_zp, bias' = bias - x_zp sum w).
Each int8 x int8 product is formed in int16 (|x w| <= 128 * 127 fits) and widened into
the int32 accumulator, which NEON does as smull + saddw: 16 channels of 4 output pixels
stay in registers while the kh x kw taps stream through.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node
from edgeq.lower_tvm import requant as rq
from edgeq.lower_tvm.ops.conv import ConvGeometry, conv_geometry


def is_depthwise(node: Node, graph: Graph) -> bool:
    geo = conv_geometry(node, graph)
    return geo.g > 1 and geo.cg == 1


class DepthwiseLowering:
    op = "QConv"

    def __init__(self, node: Node, graph: Graph, cpu):
        self.node = node
        self.geo = g = conv_geometry(node, graph)
        self.m = g.co // g.c
        self.w, self.bias, self.mult, self.shift = (graph.const(t) if t else None for t in node.inputs[1:5])
        if self.w is None or self.mult is None or self.shift is None:
            raise EdgeqError(f"layer {node.name}: QConv weights and multipliers must be constants",
                             "this is an edgeq bug: the quantizer makes them constants")
        self.with_left = bool(np.max(self.shift) > 0)
        self.cot = next(t for t in (16, 8, 4, 1) if g.co % t == 0)
        self.pt = 4 if g.ow >= 4 else g.ow
        self.x_zp = int(node.attr("x_zp", 0))
        self.y_zp = int(node.attr("y_zp", 0))
        self.act = (int(node.attr("act_min", -128)), int(node.attr("act_max", 127)))

    @property
    def padded(self) -> bool:
        g = self.geo
        return any((g.pt, g.pl, g.pb, g.pr))

    @property
    def owp(self) -> int:
        return -(-self.geo.ow // self.pt) * self.pt

    def key(self) -> dict:
        return {"op": "depthwise", **self.geo.__dict__, "pt": self.pt, "cot": self.cot, "x_zp": self.x_zp,
                "y_zp": self.y_zp, "act": list(self.act), "left": self.with_left}

    def consts(self) -> dict[str, np.ndarray]:
        g = self.geo
        w = np.asarray(self.w, dtype=np.int8).reshape(g.co, g.kh, g.kw)
        bias = np.zeros(g.co, np.int64) if self.bias is None else np.asarray(self.bias, np.int64).reshape(-1)
        lsh, rsh = rq.split_shifts(np.asarray(self.shift).reshape(-1))
        folded = bias - self.x_zp * w.astype(np.int64).reshape(g.co, -1).sum(axis=1)
        return {"w": np.ascontiguousarray(w.transpose(1, 2, 0)), "bias": folded.astype(np.int32),
                "mult": np.asarray(self.mult, np.int32).reshape(-1), "lshift": lsh, "rshift": rsh}

    def io(self) -> dict[str, str]:
        return {"x": self.node.inputs[0], "y": self.node.outputs[0]}

    def te_args(self) -> list:
        from tvm import te, tirx
        g, m = self.geo, self.m
        x = te.placeholder((g.n, g.h, g.w * g.c), "int8", name="x")
        w = te.placeholder((g.kh, g.kw, g.co), "int8", name="w")
        bias, mult, lsh, rsh = (te.placeholder((g.co,), "int32", name=n)
                                for n in ("bias", "mult", "lshift", "rshift"))
        if self.padded:
            hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1
            wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1

            def pad_value(n, i, j):
                ih, iw, c = i - g.pt, j // g.c - g.pl, j % g.c
                inside = tirx.all(ih >= 0, ih < g.h, iw >= 0, iw < g.w)
                return te.if_then_else(inside, x[n, ih, iw * g.c + c], tirx.const(self.x_zp, "int8"))
            src = te.compute((g.n, hp, wp * g.c), pad_value, name="xpad")
        else:
            src = x
        kh = te.reduce_axis((0, g.kh), name="kh")
        kw = te.reduce_axis((0, g.kw), name="kw")
        last = g.ow - 1

        def acc_value(n, oh, ow, co):
            col = (tirx.min(ow, last) * g.sw + kw * g.dw) * g.c + (co // m if m > 1 else co)
            prod = src[n, oh * g.sh + kh * g.dh, col].astype("int16") * w[kh, kw, co].astype("int16")
            return te.sum(prod.astype("int32"), axis=[kh, kw])
        acc = te.compute((g.n, g.oh, self.owp, g.co), acc_value, name="acc")

        def y_value(n, oh, ow, co):
            v = rq.mbqm(acc[n, oh, ow, co] + bias[co], mult[co], lsh[co], rsh[co], self.with_left)
            return rq.clamp_to_int8(v, self.y_zp, *self.act)
        y = te.compute((g.n, g.oh, g.ow, g.co), y_value, name="y")
        return [x, w, bias, mult, lsh, rsh] + ([src] if self.padded else []) + [y]

    def schedule(self, func):
        from tvm import s_tir
        sch = s_tir.Schedule(func)
        acc, y = sch.get_sblock("acc"), sch.get_sblock("y")
        n, oh, ow, co, kh, kw = sch.get_loops(acc)
        ow_o, ow_i = sch.split(ow, [None, self.pt])
        co_o, co_i = sch.split(co, [None, self.cot])
        sch.reorder(n, oh, ow_o, co_o, kh, kw, ow_i, co_i)
        sch.set_scope(acc, 0, "local")
        sch.reverse_compute_at(y, co_o)
        init = sch.decompose_reduction(acc, kh)
        sch.unroll(kh)
        sch.unroll(kw)
        sch.unroll(ow_i)
        sch.vectorize(co_i)
        *_, i_ow, i_co = sch.get_loops(init)
        sch.unroll(i_ow)
        sch.vectorize(i_co)
        *_, y_ow, y_co = sch.get_loops(y)
        sch.unroll(y_ow)
        sch.vectorize(y_co)
        if self.padded:
            pad = sch.get_sblock("xpad")
            *_, col = sch.get_loops(pad)
            _, c_i = sch.split(col, [None, self.geo.c])
            if self.geo.c % 16 == 0:
                _, c_ii = sch.split(c_i, [None, 16])
                sch.vectorize(c_ii)
        return sch.mod["main"]
