"""QAdd (TFLite ADD with numpy broadcasting) on whatever layout the caller stores.

sa = MBQM((a - a_zp) << left_shift, a_mult, a_shift), sb likewise,
y = clamp(y_zp + MBQM(sa + sb, y_mult, y_shift), act_min, act_max)
(docs/semantics.md). Every multiplier and shift is a compile-time scalar here, so the
kernel is specialized to the node; shapes are the physical ones (`perm` maps the
graph's logical axes to the stored order: (0, 2, 3, 1) for NHWC), broadcasting is
numpy's on them. The innermost axis is vectorized 16 lanes at a time when it allows.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, Node
from edgeq.lower_tvm import requant as rq

HALF = 1 << 30   # the Q31 multiplier of 0.5

def physical(shape, perm) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    return tuple(shape[i] for i in perm) if perm is not None and len(shape) == len(perm) else shape


class AddLowering:
    op = "QAdd"

    def __init__(self, node: Node, graph: Graph, cpu, perm=None):
        self.node = node
        rank = max(len(graph.tensors[t].shape) for t in (*node.inputs[:2], node.outputs[0]))
        pad = lambda s: (1,) * (rank - len(s)) + tuple(int(d) for d in s)  # noqa: E731  numpy's alignment
        self.a, self.b, self.y = (physical(pad(graph.tensors[t].shape), perm)
                                  for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
        at = node.attrs
        self.p = {k: int(at.get(k, 20 if k == "left_shift" else 0)) for k in
                  ("a_zp", "b_zp", "y_zp", "left_shift", "a_mult", "a_shift", "b_mult", "b_shift",
                   "y_mult", "y_shift")}
        self.act = (int(at.get("act_min", -128)), int(at.get("act_max", 127)))
        self.form = "neon" if self.y[-1] % 4 == 0 else "int64"

    def key(self) -> dict:
        return {"op": "add", "a": self.a, "b": self.b, "y": self.y, **self.p, "act": self.act, "form": self.form}

    def consts(self) -> dict[str, np.ndarray]:
        return {}

    def io(self) -> dict[str, str]:
        return {"a": self.node.inputs[0], "b": self.node.inputs[1], "y": self.node.outputs[0]}

    def _mbqm(self, x, mult: int, shift: int):
        from tvm import tirx
        c = lambda v: tirx.const(int(v), "int32")  # noqa: E731
        right = max(-shift, 0)
        form = "neon_rs" if self.form == "neon" and right >= 1 else self.form
        return rq.mbqm(x, c(mult), c(max(shift, 0)), c(-right if form in rq.NEON_FORMS else right),
                       with_left=shift > 0, form=form)

    def te_args(self) -> list:
        from tvm import te, tirx
        a = te.placeholder(self.a, "int8", name="a")
        b = te.placeholder(self.b, "int8", name="b")
        p = self.p

        def pick(t, shape, idx):  # numpy broadcasting: size-1 axes read index 0
            return t[tuple(0 if d == 1 else i for d, i in zip(shape, idx))]

        def c(v):
            return tirx.const(int(v), "int32")

        def rescaled(t, shape, idx, zp, mult, shift):
            d = pick(t, shape, idx).astype("int32") - c(zp)
            if (mult, shift) == (HALF, 0) and p["left_shift"] >= 1:
                # the operand of the larger scale has multiplier 0.5 exactly (TFLite's ADD
                # rescales both to twice the larger one): SRDHM(v, 2^30) = v / 2 for any even
                # v (the nudge of +-2^30 / 2^31 never crosses an integer), so one shift replaces
                # the multiply and its rounding; no right shift follows (shift 0)
                return d << c(p["left_shift"] - 1)
            return self._mbqm(d << c(p["left_shift"]), mult, shift)

        def y_value(*idx):
            s = (rescaled(a, self.a, idx, p["a_zp"], p["a_mult"], p["a_shift"])
                 + rescaled(b, self.b, idx, p["b_zp"], p["b_mult"], p["b_shift"]))
            return rq.clamp_to_int8(self._mbqm(s, p["y_mult"], p["y_shift"]), p["y_zp"], *self.act)
        y = te.compute(self.y, y_value, name="y")
        return [a, b, y]

    def schedule(self, func):
        from tvm import s_tir
        sch = s_tir.Schedule(func)
        y = sch.get_sblock("y")
        loops = sch.get_loops(y)
        # fuse the trailing axes that neither input broadcasts: one long vectorizable run
        def full(i):
            return self.a[i] == self.y[i] and self.b[i] == self.y[i]
        k = len(self.y) - 1   # the run's first axis
        while k > 0 and full(k) and full(k - 1):
            k -= 1
        inner = sch.fuse(*loops[k:]) if k < len(loops) - 1 else loops[-1]
        extent = int(sch.get(inner).extent)
        if extent % 16 == 0:
            _, four, lanes = sch.split(inner, [None, 4, 4])
            sch.unroll(four)
            sch.vectorize(lanes)
        elif extent % 4 == 0:
            _, lanes = sch.split(inner, [None, 4])
            sch.vectorize(lanes)
        return sch.mod["main"]
