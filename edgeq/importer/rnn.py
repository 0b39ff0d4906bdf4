"""GRU and LSTM -> the cell unrolled over its (static) time steps into canonical ops: a
Transpose to batch-first, per step a Gather of x_t, Gemms for the input and recurrent
projections of each gate, Sigmoid / Tanh, Mul and Add, and the state update as one
GatedState node reading the gates' pre-activations (GRU's h = z h + (1 - z) n, LSTM's
c = f c + i g with their sigmoids and tanh). Quantized (docs/semantics.md), that node
computes those gates in int16 and keeps the carried state in int16 (QGatedState), with an
int8 copy (QNarrow16) for the ops that read it (QGemm, QMul, QLut); with state_bits=8 the
float pass expand_gated_state turns it back into Sigmoid, Tanh, Mul and Add first, so the
whole cell is int8 ops.

ONNX GRU (gates z, r, h in that order in W [1, 3H, C], R [1, 3H, H], B [1, 6H]):
    z = sigmoid(x Wz' + h Rz' + Wbz + Rbz)        r = sigmoid(x Wr' + h Rr' + Wbr + Rbr)
    n = tanh(x Wh' + (r * h) Rh' + Rbh + Wbh)      (linear_before_reset = 0)
    n = tanh(x Wh' + r * (h Rh' + Rbh) + Wbh)      (linear_before_reset = 1, torch's)
    h = n + z * (h - n)
ONNX LSTM (gates i, o, f, c in W [1, 4H, C], R [1, 4H, H], B [1, 8H]; no peepholes):
    i, o, f = sigmoid(x W' + h R' + Wb + Rb) of their gate   g = tanh(the same for c)
    c = f * c + i * g                              h = o * tanh(c)
A constant initial state (zeros unless given) is folded into the first step's constants.

Supported: one forward direction, layout 0, the default activations, no clip, no
sequence_lens shorter than the sequence (LSTM: no peepholes, input_forget 0). Outputs:
Y_h (and Y_c), the last step's states, with edgeq's batch on axis 0; Y (every step) is
refused when the model reads it, naming the node.
"""
from __future__ import annotations

import numpy as np

from edgeq.importer.converters import _fail
from edgeq.importer.select import gather_axes
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

    def gated(self, state, gate, cand, what, cand_gate=None):
        """sigmoid(gate) * state + w * tanh(cand), w = sigmoid(cand_gate) or 1 - sigmoid(gate),
        from the pre-activations: the state update as one node (the quantizer computes the
        gates in int16 and carries its output, the state, in int16)."""
        ins = [state[1] if state[0] == "act" else self.const(np.reshape(state[1], (1, -1)), f"{what}_s0"),
               gate[1], cand[1]]
        return self._emit("GatedState", ins + ([cand_gate[1]] if cand_gate else []), what)

    def unary(self, op, a, what):
        if a[0] == "const":
            f = {"Sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "Tanh": np.tanh}[op]
            return ("const", f(a[1]))
        return self._emit(op, [a[1]], what)


def _used(m, name: str) -> bool:
    gp = m.proto.graph
    return bool(name) and (any(name in n.input for n in gp.node) or any(o.name == name for o in gp.output))


_EMITS = ("Transpose", "Gather", "Reshape", "Gemm", "Sigmoid", "Tanh", "Mul", "Add", "GatedState", "Identity")


def _checked(m, node, ins, attrs, gates: int):
    """The parts GRU and LSTM share: (x in batch-first [1, T, C] as a graph name, T, C, H,
    W [gates*H, C], R [gates*H, H], B [2*gates*H], the optional input `ins[k]` as a vector or None)."""
    if attrs.get("direction", "forward") != "forward":
        _fail(node, f"direction={attrs['direction']!r} is not supported (only forward)",
              f"use a unidirectional {node.op_type}")
    acts = [a.lower() for a in attrs.get("activations", ["Sigmoid", "Tanh", "Tanh"][:gates - 1])]
    if acts != ["sigmoid", "tanh", "tanh"][:len(acts)] or len(acts) not in (2, 3) or "clip" in attrs:
        _fail(node, "only the default activations (Sigmoid, Tanh) without clip are supported")
    if int(attrs.get("layout", 0)) != 0:  # onnxruntime refuses it too: nothing to check it against
        _fail(node, "layout=1 (batch first) is not supported", "export with layout 0 (torch does)")
    x_shape = m.shape(ins[0])
    if len(x_shape) != 3:
        _fail(node, f"input rank {len(x_shape)}, expected 3")
    T, batch, C = x_shape
    if batch != 1:
        _fail(node, f"batch {batch}: edgeq compiles one sample at a time", "export with batch 1")
    W = np.asarray(m.need_const(ins[1], "W", node), np.float64)
    R = np.asarray(m.need_const(ins[2], "R", node), np.float64)
    H = int(attrs.get("hidden_size", R.shape[-1]))
    if W.shape != (1, gates * H, C) or R.shape != (1, gates * H, H):
        _fail(node, f"W {W.shape} / R {R.shape} do not fit hidden_size {H} and {C} inputs")
    B = np.zeros(2 * gates * H) if len(ins) < 4 or not ins[3] else \
        np.asarray(m.need_const(ins[3], "B", node), np.float64).reshape(-1)
    if B.size != 2 * gates * H:
        _fail(node, f"B has {B.size} values (needs {2 * gates * H})")
    if len(ins) > 4 and ins[4]:
        lens = np.asarray(m.need_const(ins[4], "sequence_lens", node)).reshape(-1)
        if np.any(lens != T):
            _fail(node, f"sequence_lens {lens.tolist()} shorter than the {T} steps are not supported")
    if _used(m, node.output[0]):
        _fail(node, "its output Y (the hidden state at every step) is read; only the last step's state "
                    "(Y_h) is supported", "use the final hidden state (h_n) instead of the full output")
    return T, C, H, W[0], R[0], B


def _state(m, node, ins, k: int, H: int, what: str) -> tuple[str, np.ndarray]:
    v = np.zeros(H) if len(ins) <= k or not ins[k] else \
        np.asarray(m.need_const(ins[k], what, node), np.float64).reshape(-1)
    if v.size != H:
        _fail(node, f"{what} has {v.size} values (needs {H})")
    return ("const", v)


def _steps(m, node, cell: "_Cell", T: int, C: int):
    """x_t as [1, C] activations, t = 0 .. T-1."""
    # [T, 1, C] -> [1, T, C]: the batch back on axis 0 (a batched run has it on axis 1 here,
    # after the exporter's Transpose), the steps along axis 1
    x = cell._emit("Transpose", [m.ref(node.input[0])], "batch_first", {"perm": [1, 0, 2]})[1]
    for t in range(T):
        step = gather_axes(m, node, x, {1: [t]}, m.temp(f"{node.name}/x{t}"), f"{node.name}/x{t}")
        yield t, cell._emit("Reshape", [step], f"x{t}", {"shape": [1, C]})


def _state_output(m, node, k: int, state, H: int, what: str) -> None:
    if len(node.output) > k and node.output[k]:  # [directions, batch, H]
        if state[0] == "const":
            _fail(node, f"{what} does not depend on the input (a sequence without steps)")
        m.emit("Reshape", [state[1]], node.output[k], {"shape": [1, 1, H]}, f"{node.name}/{what}")


@implements("import", "GRU", emits=_EMITS)
def gru(m, node, ins, attrs):
    T, C, H, W, R, B = _checked(m, node, ins, attrs, 3)
    Wz, Wr, Wh = W[:H], W[H:2 * H], W[2 * H:]
    Rz, Rr, Rh = R[:H], R[H:2 * H], R[2 * H:]
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = (B[i * H:(i + 1) * H] for i in range(6))
    lbr = int(attrs.get("linear_before_reset", 0))
    cell = _Cell(m, node)
    h = _state(m, node, ins, 5, H, "initial_h")
    zero = np.zeros(H)
    for t, xt in _steps(m, node, cell, T, C):
        z_in = cell.add(cell.linear(xt, Wz, Wbz + Rbz, f"xz{t}"), cell.linear(h, Rz, zero, f"hz{t}"), f"z{t}_in")
        r = cell.unary("Sigmoid", cell.add(cell.linear(xt, Wr, Wbr + Rbr, f"xr{t}"),
                                           cell.linear(h, Rr, zero, f"hr{t}"), f"r{t}_in"), f"r{t}")
        if lbr:
            rec = cell.mul(r, cell.linear(h, Rh, Rbh, f"hh{t}"), f"rh{t}")
            pre = cell.add(cell.linear(xt, Wh, Wbh, f"xh{t}"), rec, f"n{t}_in")
        else:
            rec = cell.linear(cell.mul(r, h, f"rh{t}"), Rh, zero, f"hh{t}")
            pre = cell.add(cell.linear(xt, Wh, Wbh + Rbh, f"xh{t}"), rec, f"n{t}_in")
        h = cell.gated(h, z_in, pre, f"h{t}")
    _state_output(m, node, 1, h, H, "Y_h")


@implements("import", "LSTM", emits=_EMITS)
def lstm(m, node, ins, attrs):
    T, C, H, W, R, B = _checked(m, node, ins, attrs, 4)
    if int(attrs.get("input_forget", 0)):
        _fail(node, "input_forget=1 is not supported")
    if len(ins) > 7 and ins[7] and np.any(np.asarray(m.need_const(ins[7], "P", node)) != 0):
        _fail(node, "peephole connections (P) are not supported", "export an LSTM without peepholes")
    gate = {g: (W[k * H:(k + 1) * H], R[k * H:(k + 1) * H], B[k * H:(k + 1) * H] + B[(4 + k) * H:(5 + k) * H])
            for k, g in enumerate("iofc")}
    cell = _Cell(m, node)
    h = _state(m, node, ins, 5, H, "initial_h")
    c = _state(m, node, ins, 6, H, "initial_c")
    zero = np.zeros(H)

    def pre(g, xt, t):
        Wg, Rg, bg = gate[g]
        return cell.add(cell.linear(xt, Wg, bg, f"x{g}{t}"), cell.linear(h, Rg, zero, f"h{g}{t}"), f"{g}{t}_in")

    for t, xt in _steps(m, node, cell, T, C):
        i_in, f_in, g_in = pre("i", xt, t), pre("f", xt, t), pre("c", xt, t)
        o = cell.unary("Sigmoid", pre("o", xt, t), f"o{t}")
        c = cell.gated(c, f_in, g_in, f"c{t}", cand_gate=i_in)
        h = cell.mul(o, cell.unary("Tanh", c, f"tanh_c{t}"), f"h{t}")
    _state_output(m, node, 1, h, H, "Y_h")
    _state_output(m, node, 2, c, H, "Y_c")
