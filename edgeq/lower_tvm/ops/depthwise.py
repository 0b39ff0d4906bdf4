"""Depthwise QConv (group == C, channel multiplier M = Co / C) on NHWC, vectorized over
channels.

acc[n, oh, ow, co] = sum_{kh, kw} x[n, oh*sh + kh*dh, ow*sw + kw*dw, co / M] * w[kh, kw, co]
with the zero point folded as in ops/conv.py (pad with x_zp, bias' = bias - x_zp sum w).
Taps go in pairs: the two int8 x int8 products of a pair are summed in int16 (weights are
in [-127, 127], so |x0 w0 + x1 w1| <= 2 * 128 * 127 = 32512 fits) and that sum is widened
into the int32 accumulator: NEON's smull + smlal + saddw, 10 instructions per 32
multiply-adds. An odd tap count gets a zero-weight partner (re-reading the last tap).
16 channels of 4 output pixels stay in registers while the taps stream through.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node
from edgeq.lower_tvm import requant as rq
from edgeq.lower_tvm.ops.conv import conv_geometry, finish_requantization, hide_init_reads, pixel_tile
from edgeq.lower_tvm.ops.padding import padded_rows, schedule_padded_rows


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
        self.form = rq.neon_form(np.maximum(-np.asarray(self.shift), 0)) if self.cot >= 4 else "int64"
        self.pt = pixel_tile(g.oh * g.ow, 4)
        self.x_zp = int(node.attr("x_zp", 0))
        self.y_zp = int(node.attr("y_zp", 0))
        self.act = (int(node.attr("act_min", -128)), int(node.attr("act_max", 127)))

    @property
    def padded(self) -> bool:
        g = self.geo
        return any((g.pt, g.pl, g.pb, g.pr))

    @property
    def pp(self) -> int:
        """Output pixels (p = oh * OW + ow) rounded up to whole tiles."""
        return -(-self.geo.oh * self.geo.ow // self.pt) * self.pt

    def key(self) -> dict:
        return {"op": "depthwise", **self.geo.__dict__, "pt": self.pt, "cot": self.cot, "x_zp": self.x_zp,
                "y_zp": self.y_zp, "act": list(self.act), "left": self.with_left, "form": self.form}

    @property
    def pairs(self) -> int:
        return (self.geo.kh * self.geo.kw + 1) // 2

    def consts(self) -> dict[str, np.ndarray]:
        g = self.geo
        w = np.asarray(self.w, dtype=np.int8).reshape(g.co, g.kh, g.kw)
        bias = np.zeros(g.co, np.int64) if self.bias is None else np.asarray(self.bias, np.int64).reshape(-1)
        lsh, rsh = rq.split_shifts(np.asarray(self.shift).reshape(-1))
        folded = bias - self.x_zp * w.astype(np.int64).reshape(g.co, -1).sum(axis=1)
        taps = np.zeros((2 * self.pairs, g.co), np.int8)   # [tap, co], a zero tap at the end if odd
        taps[:g.kh * g.kw] = w.reshape(g.co, -1).T
        return {"w": taps.reshape(self.pairs, 2, g.co), "bias": folded.astype(np.int32),
                "mult": np.asarray(self.mult, np.int32).reshape(-1), "lshift": lsh,
                "rshift": rq.shift_args(rsh, self.form)}

    init = {"acc": "bias[v_co]"}   # the accumulators start at the folded bias

    def io(self) -> dict[str, str]:
        return {"x": self.node.inputs[0], "y": self.node.outputs[0]}

    def te_args(self) -> list:
        from tvm import te, tirx
        g, m = self.geo, self.m
        x = te.placeholder((g.n, g.h, g.w * g.c), "int8", name="x")
        w = te.placeholder((self.pairs, 2, g.co), "int8", name="w")
        bias, mult, lsh, rsh = (te.placeholder((g.co,), "int32", name=n)
                                for n in ("bias", "mult", "lshift", "rshift"))
        if self.padded:
            hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1
            wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1
            src = padded_rows(x, g.n, g.h, g.w, g.c, g.pt, g.pl, (g.n, hp, wp * g.c), self.x_zp)
        else:
            src = x
        tp = te.reduce_axis((0, self.pairs), name="tp")
        pixels, taps = g.oh * g.ow, g.kh * g.kw

        def tap(n, p, co, s):
            pc = tirx.min(p, pixels - 1)          # a tile past the end re-reads the last pixel
            oh, ow = pc // g.ow, pc % g.ow
            t = tirx.min(2 * tp + s, taps - 1)   # an odd count's partner re-reads the last tap
            kh, kw = t // g.kw, t % g.kw
            col = (ow * g.sw + kw * g.dw) * g.c + (co // m if m > 1 else co)
            x16 = src[n, oh * g.sh + kh * g.dh, col].astype("int16")
            return x16 * w[tp, s, co].astype("int16")

        def acc_value(n, p, co):
            return te.sum((tap(n, p, co, 0) + tap(n, p, co, 1)).astype("int32"), axis=[tp])
        acc = te.compute((g.n, self.pp, g.co), acc_value, name="acc")

        def y_value(n, p, co):
            v = rq.mbqm(acc[n, p, co], mult[co], lsh[co], rsh[co], self.with_left, self.form)
            return rq.clamp_to_int8(v, self.y_zp, *self.act)
        y = te.compute((g.n, pixels, g.co), y_value, name="y")
        return [x, w, bias, mult, lsh, rsh] + ([src] if self.padded else []) + [y]

    def schedule(self, func):
        from tvm import s_tir
        sch = s_tir.Schedule(func)
        acc, y = sch.get_sblock("acc"), sch.get_sblock("y")
        n, p, co, tp = sch.get_loops(acc)
        ow_o, ow_i = sch.split(p, [None, self.pt])
        co_o, co_i = sch.split(co, [None, self.cot])
        sch.reorder(n, ow_o, co_o, tp, ow_i, co_i)
        sch.reverse_compute_at(y, co_o)
        sch.vectorize(co_i)   # before decompose_reduction: after it the update block has
        init = sch.decompose_reduction(acc, tp)   # no init and vectorize refuses it
        hide_init_reads(sch, acc)
        sch.unroll(tp)
        sch.unroll(ow_i)
        *_, i_ow, i_co = sch.get_loops(init)
        sch.unroll(i_ow)
        sch.vectorize(i_co)
        *_, y_ow, y_co = sch.get_loops(y)
        sch.unroll(y_ow)
        finish_requantization(sch, y_co, self.cot, self.form, self.y_zp, *self.act, self.with_left,
                              (self.geo.oh * self.geo.ow) % self.pt == 0)
        if self.padded:
            schedule_padded_rows(sch)
        return sch.mod["main"]
