"""GRU -> the cell unrolled over its (static) time steps into canonical ops: per step a
Gather of x_t, Gemms for the input and recurrent projections, Sigmoid / Tanh, Mul and Add.
After quantization every step is ordinary int8 ops (QGemm, QLut, QMul, QAdd): the hidden
state is int8 with its own calibrated parameters at every step, so no new kernel or
TFLite builtin is needed.

ONNX GRU (gates z, r, h in that order in W [1, 3H, C], R [1, 3H, H], B [1, 6H]):
    z = sigmoid(x Wz' + h Rz' + Wbz + Rbz)        r = sigmoid(x Wr' + h Rr' + Wbr + Rbr)
    n = tanh(x Wh' + (r * h) Rh' + Rbh + Wbh)      (linear_before_reset = 0)
    n = tanh(x Wh' + r * (h Rh' + Rbh) + Wbh)      (linear_before_reset = 1, torch's)
    h = n + z * (h - n)
A constant initial state (zeros unless given) is folded into the first step's constants.

Supported: one forward direction, layout 0, the default activations, no clip, no
sequence_lens shorter than the sequence. Outputs: Y_h (the last hidden state, edgeq's batch on axis 0);
Y (every step) is refused when the model reads it, naming the node.
"""
from __future__ import annotations

import numpy as np

from edgeq.onnx_import_ops import _fail
from edgeq.onnx_import_select import gather_axes
from edgeq.ops import implements


class _Cell:
    """Emits one node at a time; an operand is ('act', tensor name) or ('const', array)."""

    def __init__(self, m, node):
        self.m, self.node, self.k = m, node, 0

    def _name(self, what: str) -> tuple[str, str]:
        self.k += 1
        return self.m.temp(f"{self.node.output[-1] or self.node.name}/gru{self.k}_{what}"), \
            f"{self.node.name}/{self.k}_{what}"

    def _emit(self, op, inputs, what, attrs=None):
        out, name = self._name(what)
        return ("act", self.m.emit(op, inputs, out, attrs or {}, name))

    def const(self, v, what):
        return self.m.add_const(f"{self.node.name}/{what}", np.asarray(v, np.float32))

    def linear(self, h, W, b, what):
        """h @ W.T + b."""
        if h[0] == "const":
            return ("const", h[1] @ W.T + b)
        return self._emit("Gemm", [h[1], self.const(W, f"{what}_W"), self.const(b, f"{what}_B")], what)

    def add(self, a, b, what):
        if a[0] == "const" and b[0] == "const":
            return ("const", a[1] + b[1])
        if a[0] == "const":
            a, b = b, a
        return self._emit("Add", [a[1], b[1] if b[0] == "act" else self.const(b[1], f"{what}_c")], what)

    def mul(self, a, b, what):
        if a[0] == "const" and b[0] == "const":
            return ("const", a[1] * b[1])
        if a[0] == "const":
            a, b = b, a
        return self._emit("Mul", [a[1], b[1] if b[0] == "act" else self.const(b[1], f"{what}_c")], what)

    def unary(self, op, a, what):
        if a[0] == "const":
            f = {"Sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "Tanh": np.tanh}[op]
            return ("const", f(a[1]))
        return self._emit(op, [a[1]], what)


def _used(m, name: str) -> bool:
    gp = m.proto.graph
    return bool(name) and (any(name in n.input for n in gp.node) or any(o.name == name for o in gp.output))


@implements("import", "GRU", emits=("Transpose", "Gather", "Reshape", "Gemm", "Sigmoid", "Tanh", "Mul", "Add",
                                    "Identity"))
def gru(m, node, ins, attrs):
    if attrs.get("direction", "forward") != "forward":
        _fail(node, f"direction={attrs['direction']!r} is not supported (only forward)", "use a unidirectional GRU")
    acts = [a.lower() for a in attrs.get("activations", ["Sigmoid", "Tanh"])]
    if acts != ["sigmoid", "tanh"] or "clip" in attrs:
        _fail(node, "only the default activations (Sigmoid, Tanh) without clip are supported")
    if int(attrs.get("layout", 0)) != 0:  # onnxruntime refuses it too: nothing to check it against
        _fail(node, "layout=1 (batch first) is not supported", "export the GRU with layout 0 (torch does)")
    x_shape = m.shape(ins[0])
    if len(x_shape) != 3:
        _fail(node, f"input rank {len(x_shape)}, expected 3")
    T, batch, C = x_shape
    if batch != 1:
        _fail(node, f"batch {batch}: edgeq compiles one sample at a time", "export with batch 1")
    W = np.asarray(m.need_const(ins[1], "W", node), np.float64)
    R = np.asarray(m.need_const(ins[2], "R", node), np.float64)
    H = int(attrs.get("hidden_size", R.shape[-1]))
    if W.shape != (1, 3 * H, C) or R.shape != (1, 3 * H, H):
        _fail(node, f"W {W.shape} / R {R.shape} do not fit hidden_size {H} and {C} inputs")
    B = np.zeros(6 * H) if len(ins) < 4 or not ins[3] else \
        np.asarray(m.need_const(ins[3], "B", node), np.float64).reshape(-1)
    if len(ins) > 4 and ins[4]:
        lens = np.asarray(m.need_const(ins[4], "sequence_lens", node)).reshape(-1)
        if np.any(lens != T):
            _fail(node, f"sequence_lens {lens.tolist()} shorter than the {T} steps are not supported")
    h0 = np.zeros(H) if len(ins) < 6 or not ins[5] else \
        np.asarray(m.need_const(ins[5], "initial_h", node), np.float64).reshape(-1)
    if h0.size != H or B.size != 6 * H:
        _fail(node, f"B has {B.size} values (needs {6 * H}), initial_h {h0.size} (needs {H})")
    if _used(m, node.output[0]):
        _fail(node, "its output Y (the hidden state at every step) is read; only Y_h, the last step's, "
                    "is supported", "use the GRU's final hidden state (h_n) instead of its full output")
    Wz, Wr, Wh = W[0, :H], W[0, H:2 * H], W[0, 2 * H:]
    Rz, Rr, Rh = R[0, :H], R[0, H:2 * H], R[0, 2 * H:]
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = (B[i * H:(i + 1) * H] for i in range(6))
    lbr = int(attrs.get("linear_before_reset", 0))

    cell = _Cell(m, node)
    x = m.ref(ins[0])
    # [T, 1, C] -> [1, T, C]: the batch back on axis 0 (a batched run has it on axis 1 here,
    # after the exporter's Transpose), the steps along axis 1
    x = cell._emit("Transpose", [x], "batch_first", {"perm": [1, 0, 2]})[1]
    h = ("const", h0)
    for t in range(T):
        step = gather_axes(m, node, x, {1: [t]}, m.temp(f"{node.name}/x{t}"), f"{node.name}/x{t}")
        xt = cell._emit("Reshape", [step], f"x{t}", {"shape": [1, C]})
        z = cell.unary("Sigmoid", cell.add(cell.linear(xt, Wz, Wbz + Rbz, f"xz{t}"),
                                           cell.linear(h, Rz, np.zeros(H), f"hz{t}"), f"z{t}_in"), f"z{t}")
        r = cell.unary("Sigmoid", cell.add(cell.linear(xt, Wr, Wbr + Rbr, f"xr{t}"),
                                           cell.linear(h, Rr, np.zeros(H), f"hr{t}"), f"r{t}_in"), f"r{t}")
        if lbr:
            rec = cell.mul(r, cell.linear(h, Rh, Rbh, f"hh{t}"), f"rh{t}")
            pre = cell.add(cell.linear(xt, Wh, Wbh, f"xh{t}"), rec, f"n{t}_in")
        else:
            rec = cell.linear(cell.mul(r, h, f"rh{t}"), Rh, np.zeros(H), f"hh{t}")
            pre = cell.add(cell.linear(xt, Wh, Wbh + Rbh, f"xh{t}"), rec, f"n{t}_in")
        n = cell.unary("Tanh", pre, f"n{t}")
        diff = cell.add(h, cell.mul(n, ("const", np.array(-1.0)), f"neg_n{t}"), f"h_minus_n{t}")
        h = cell.add(n, cell.mul(z, diff, f"zd{t}"), f"h{t}")
    if len(node.output) > 1 and node.output[1]:  # Y_h [1, 1, H]
        m.emit("Reshape", [h[1]], node.output[1], {"shape": [1, 1, H]}, f"{node.name}/Y_h")
