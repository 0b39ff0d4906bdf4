"""QMaxPool and QAvgPool on NHWC, vectorized over channels.

Max: padding taps hold -128, which never beats a tap inside the window (the compiler
rejects windows lying entirely in the padding), then the act clamp.
Average: `n` = the taps inside the window (kH*kW with count_include_pad, padding then
adding x_zp), `sum` = their int8 sum, y = clamp(round_half_away_div(sum, n, recip[n],
rshift[n])) with the node's exact reciprocal table (docs/semantics.md): the magnitude
(|sum| + n//2) times recip[n] in int64, shifted right by rshift[n], signed like sum.
n depends only on the output position, so (n//2, recip[n], rshift[n]) per position is
a compile-time array (`div`, [OH, OW, 3]).
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.reference._common import pool_out_size, spatial_attrs
from edgeq.ir import Graph, Node


class PoolLowering:
    def __init__(self, node: Node, graph: Graph, cpu):
        self.node, self.op = node, node.op
        x = graph.tensors[node.inputs[0]].shape
        if len(x) != 4:
            raise EdgeqError(f"layer {node.name}: {node.op} on a {len(x)}-D tensor", "use 2-D pooling")
        self.n, self.c, self.h, self.w = (int(d) for d in x)
        self.kh, self.kw = (int(k) for k in node.attr("kernel"))
        (self.sh, self.sw), self.pads, (self.dh, self.dw) = spatial_attrs(node)
        self.oh = pool_out_size(self.h, self.kh, self.sh, self.pads[0], self.pads[2], self.dh)
        self.ow = pool_out_size(self.w, self.kw, self.sw, self.pads[1], self.pads[3], self.dw)
        self.include_pad = bool(node.attr("count_include_pad", 0))
        self.x_zp = int(node.attr("x_zp", 0))
        self.act = (int(node.attr("act_min", -128)), int(node.attr("act_max", 127)))
        self.lanes = next(t for t in (16, 8, 4, 1) if self.c % t == 0)
        self.tap_counts()  # refuses empty windows

    def key(self) -> dict:
        return {"op": self.op, "x": [self.n, self.c, self.h, self.w], "k": [self.kh, self.kw],
                "s": [self.sh, self.sw], "pads": list(self.pads), "d": [self.dh, self.dw],
                "include_pad": self.include_pad, "x_zp": self.x_zp, "act": list(self.act)}

    def consts(self) -> dict[str, np.ndarray]:
        return {} if self.op == "QMaxPool" else {"div": self.divisors()}

    def io(self) -> dict[str, str]:
        return {"x": self.node.inputs[0], "y": self.node.outputs[0]}

    def _inside(self, oh, ow, kh, kw):
        from tvm import tirx
        ih = oh * self.sh - self.pads[0] + kh * self.dh
        iw = ow * self.sw - self.pads[1] + kw * self.dw
        return ih, iw, tirx.all(ih >= 0, ih < self.h, iw >= 0, iw < self.w)

    def te_args(self) -> list:
        from tvm import te, tirx
        x = te.placeholder((self.n, self.h, self.w, self.c), "int8", name="x")
        kh = te.reduce_axis((0, self.kh), name="kh")
        kw = te.reduce_axis((0, self.kw), name="kw")
        if self.op == "QMaxPool":
            def y_value(n, oh, ow, c):
                return tirx.max(tirx.min(best[n, oh, ow, c], tirx.const(self.act[1], "int8")),
                                tirx.const(self.act[0], "int8"))

            def tap(n, oh, ow, c):
                ih, iw, inside = self._inside(oh, ow, kh, kw)
                return te.max(te.if_then_else(inside, x[n, ih, iw, c], tirx.const(-128, "int8")),
                              axis=[kh, kw])
            best = te.compute((self.n, self.oh, self.ow, self.c), tap, name="acc")
            return [x, te.compute(best.shape, y_value, name="y")]

        div = te.placeholder((self.oh, self.ow, 3), "int32", name="div")
        pad_value = self.x_zp if self.include_pad else 0

        def tap_sum(n, oh, ow, c):
            ih, iw, inside = self._inside(oh, ow, kh, kw)
            v = te.if_then_else(inside, x[n, ih, iw, c].astype("int32"), tirx.const(pad_value, "int32"))
            return te.sum(v, axis=[kh, kw])
        total = te.compute((self.n, self.oh, self.ow, self.c), tap_sum, name="acc")

        def y_value(n, oh, ow, c):
            s = total[n, oh, ow, c].astype("int64")
            mag = (tirx.abs(s) + div[oh, ow, 0].astype("int64")) * div[oh, ow, 1].astype("int64")
            q = (mag >> div[oh, ow, 2].astype("int64")).astype("int32")
            q = tirx.Select(s >= tirx.const(0, "int64"), q, -q)
            return tirx.max(tirx.min(q, tirx.const(self.act[1], "int32")),
                            tirx.const(self.act[0], "int32")).astype("int8")
        y = te.compute((self.n, self.oh, self.ow, self.c), y_value, name="y")
        return [x, div, y]

    def tap_counts(self) -> np.ndarray:
        """[OH, OW]: the window taps inside the input (never 0: the compiler rejects that)."""
        def inside(o, k, st, pad, d, size):
            idx = o[:, None] * st - pad + np.arange(k)[None, :] * d
            return ((idx >= 0) & (idx < size)).sum(axis=1)
        counts = np.outer(inside(np.arange(self.oh), self.kh, self.sh, self.pads[0], self.dh, self.h),
                          inside(np.arange(self.ow), self.kw, self.sw, self.pads[1], self.dw, self.w))
        if (counts == 0).any():
            raise EdgeqError(f"layer {self.node.name}: a pooling window lies entirely in the padding",
                             "fix the model's pads")
        return counts

    def divisors(self) -> np.ndarray:
        """[OH, OW, 3]: (n // 2, recip[n], rshift[n]) for each output position's tap count n."""
        recip = np.asarray(self.node.attr("recip"), np.int64)
        rshift = np.asarray(self.node.attr("rshift"), np.int64)
        if recip.size != self.kh * self.kw + 1 or rshift.size != recip.size:
            raise EdgeqError(f"layer {self.node.name}: recip/rshift need {self.kh * self.kw + 1} entries",
                             "this is an edgeq bug: the quantizer writes them")
        n = self.tap_counts()
        if self.include_pad:
            n = np.full_like(n, self.kh * self.kw)
        return np.stack([n // 2, recip[n], rshift[n]], axis=-1).astype(np.int32)

    def schedule(self, func):
        from tvm import s_tir
        sch = s_tir.Schedule(func)
        acc, y = sch.get_sblock("acc"), sch.get_sblock("y")
        n, oh, ow, c, kh, kw = sch.get_loops(acc)
        c_o, c_i = sch.split(c, [None, self.lanes])
        sch.reorder(n, oh, ow, c_o, kh, kw, c_i)
        sch.reverse_compute_at(y, c_o)
        if self.lanes > 1:
            sch.vectorize(c_i)
            init = sch.decompose_reduction(acc, kh)
            sch.vectorize(sch.get_loops(init)[-1])
            sch.vectorize(sch.get_loops(y)[-1])
        return sch.mod["main"]
