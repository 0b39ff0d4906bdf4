"""One converter per supported ONNX op: ONNX node -> canonical float nodes.

A converter is registered with `@implements("import", ONNX_OP, emits=(...))` (the
canonical ops it may write; `edgeq ops` lists them). It receives the importer `m`
(constants, shapes, `emit`), the ONNX node, its input names and its attributes, and emits
canonical nodes whose last output keeps the ONNX output name (so graph outputs and later
readers need no renaming). Every attribute of the canonical form is written explicitly
(docs/float_graph.md); `emit` checks each node against its op's declaration (shape rule,
axis rule).
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError, shown
from edgeq.ops import implements
from edgeq.ops.shapes import resolve_reshape

INF = float("inf")


def _fail(node, why: str, fix: str = "change the model before export"):
    raise EdgeqError(f"{node.op_type} node '{shown(node.name)}': {why}", fix)


def axis(node, a, rank: int, what: str = "axis", inclusive: bool = False) -> int:
    """An ONNX axis in [-rank, rank) ([-rank, rank] when `inclusive`), as a non-negative index."""
    a, hi = int(a), rank + inclusive
    if not -rank <= a < hi:
        _fail(node, f"{what} {a} is out of range for a rank-{rank} tensor", "use an axis of the tensor")
    return a + rank if a < 0 else a


def _only_first_output(node):
    """Ops with optional extra outputs (Dropout mask, MaxPool indices, BN training stats)
    are supported only when nobody reads the extras; the importer prunes them later."""
    return node.output[0]


# ---- padding and 1-D lifting -------------------------------------------------------------

def resolve_pads(node, attrs, spatial, kernel, strides, dil) -> list[int]:
    """Explicit (begins..., ends...) pads for NOTSET / VALID / SAME_UPPER / SAME_LOWER."""
    r = len(spatial)
    auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0] * 2 * r)]
    elif auto == "VALID":
        pads = [0] * 2 * r
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(r):
            out = math.ceil(spatial[i] / strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - spatial[i], 0)
            small, big = total // 2, total - total // 2
            # SAME_UPPER puts the odd extra pixel at the end, SAME_LOWER at the beginning.
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        pads = begins + ends
    else:
        _fail(node, f"unknown auto_pad {auto!r}")
    if any(p < 0 for p in pads):
        _fail(node, f"negative pads {pads} are not supported")
    return pads


def ceil_extra_pad(size: int, k: int, stride: int, pb: int, pe: int, dil: int) -> int:
    """Extra end padding that makes floor-mode pooling equal ceil_mode=1 along one axis.

    Ceil mode adds one more window when the last stride leaves a partial window, but
    (PyTorch's and onnxruntime's rule) never a window that starts in the end padding.
    """
    eff = (k - 1) * dil + 1
    out = math.ceil((size + pb + pe - eff) / stride) + 1
    if (out - 1) * stride >= size + pb:
        out -= 1
    need = (out - 1) * stride + eff - (size + pb + pe)
    return max(need, 0)


def _lift_1d(m, node, x: str) -> tuple[str, bool]:
    """A rank-3 (N, C, L) input becomes (N, C, 1, L) so 1-D conv/pool reuse the 2-D ops."""
    shape = m.shape(x)
    if len(shape) == 4:
        return m.ref(x), False
    if len(shape) != 3:
        _fail(node, f"input rank {len(shape)} is not supported (only 1-D and 2-D spatial)")
    out = m.temp(f"{node.output[0]}/as2d")
    m.emit("Reshape", [m.ref(x)], out, {"shape": [shape[0], shape[1], 1, shape[2]]}, node.name + "/as2d")
    return out, True


def _spatial_attrs(node, attrs, lifted: bool, key: str, default: int) -> list[int]:
    v = [int(a) for a in attrs.get(key, [])] or None
    if lifted:
        return [default] + (v or [default])
    return v or [default, default]


def _emit_spatial(m, node, op, inputs, attrs_out, lifted):
    """Emit a 2-D op; when the input was lifted from 1-D, reshape the result back."""
    out = node.output[0]
    if not lifted:
        return m.emit(op, inputs, out, attrs_out, node.name)
    tmp = m.temp(f"{out}/2d")
    m.emit(op, inputs, tmp, attrs_out, node.name)
    n, c, _, l = m.g.tensors[tmp].shape
    return m.emit("Reshape", [tmp], out, {"shape": [n, c, l]}, node.name + "/as1d")


# ---- convolution and dense ----------------------------------------------------------------

@implements("import", "Conv", emits=("Conv", "Reshape"))
def conv(m, node, ins, attrs):
    W = np.asarray(m.need_const(ins[1], "the weight", node), np.float32)
    x, lifted = _lift_1d(m, node, ins[0])
    if lifted:
        W = W[:, :, None, :]
    if W.ndim != 4:
        _fail(node, f"weight rank {W.ndim} is not supported (only 1-D and 2-D convolution)")
    declared = [int(k) for k in attrs.get("kernel_shape", [])]
    if declared and declared != list(W.shape[2 + lifted:]):
        _fail(node, f"kernel_shape {declared} does not match the weight's {list(W.shape[2 + lifted:])}")
    co = W.shape[0]
    B = m.value(ins[2]) if len(ins) > 2 and ins[2] else None
    if len(ins) > 2 and ins[2] and B is None:
        m.need_const(ins[2], "the bias", node)
    if B is not None and np.size(B) != co:
        _fail(node, f"bias has {np.size(B)} values for {co} output channels")
    B = np.zeros(co, np.float32) if B is None else np.asarray(B, np.float32).reshape(co)
    strides = _spatial_attrs(node, attrs, lifted, "strides", 1)
    dil = _spatial_attrs(node, attrs, lifted, "dilations", 1)
    spatial = m.g.tensors[x].shape[2:]
    kernel = list(W.shape[2:])
    pads = resolve_pads(node, _lift_pads(attrs, lifted), spatial, kernel, strides, dil)
    group = int(attrs.get("group", 1))
    cin = m.g.tensors[x].shape[1]
    if cin != W.shape[1] * group or co % group:
        _fail(node, f"weight {tuple(W.shape)} with group={group} does not fit {cin} input channels")
    a = {"strides": strides, "pads": pads, "dilations": dil, "group": group}
    _emit_spatial(m, node, "Conv", [x, m.add_const(ins[1], W), m.add_const(f"{ins[1]}/bias", B)], a, lifted)


def _lift_pads(attrs, lifted):
    if not lifted:
        return attrs
    a = dict(attrs)
    if "pads" in a:
        p = [int(v) for v in a["pads"]]
        a["pads"] = [0, p[0], 0, p[1]]
    return a


def _gemm_out(m, node, x: str, W: np.ndarray, B: np.ndarray, out: str):
    """Emit y = x @ W.T + B for x of any rank >= 2 (flattened to 2-D around the Gemm)."""
    shape = m.shape(x)
    if len(shape) == 2:
        return m.emit("Gemm", [m.ref(x), m.add_const(f"{node.name}/W", W), m.add_const(f"{node.name}/B", B)],
                      out, {}, node.name)
    if len(shape) < 2:
        _fail(node, f"input rank {len(shape)} is not supported")
    flat = m.temp(f"{out}/2d")
    m.emit("Reshape", [m.ref(x)], flat, {"shape": [int(np.prod(shape[:-1])), shape[-1]]}, node.name + "/flatten")
    mid = m.temp(f"{out}/gemm")
    m.emit("Gemm", [flat, m.add_const(f"{node.name}/W", W), m.add_const(f"{node.name}/B", B)], mid, {}, node.name)
    return m.emit("Reshape", [mid], out, {"shape": list(shape[:-1]) + [W.shape[0]]}, node.name + "/unflatten")


@implements("import", "Gemm", emits=("Gemm", "Reshape", "Transpose", "Mul", "Add"))
def gemm(m, node, ins, attrs):
    if m.is_const(ins[0]):
        _fail(node, "a constant left operand is not supported")
    Bw = np.asarray(m.need_const(ins[1], "the right operand (weights)", node), np.float32)
    if attrs.get("transA", 0):
        xt = m.temp(f"{node.output[0]}/xT")
        x = m.emit("Transpose", [m.ref(ins[0])], xt, {"perm": [1, 0]}, node.name + "/transA")
    else:
        x = ins[0]
    W = (Bw if attrs.get("transB", 0) else Bw.T) * np.float32(attrs.get("alpha", 1.0))
    co = W.shape[0]
    bias = np.zeros(co, np.float32)
    dyn_c = None
    if len(ins) > 2 and ins[2]:
        C = m.value(ins[2])
        if C is None:
            dyn_c = ins[2]
        else:
            C = np.asarray(C, np.float32) * np.float32(attrs.get("beta", 1.0))
            try:
                bias = np.broadcast_to(C, (1, co)).reshape(co).copy() if C.size in (1, co) else None
            except ValueError:
                bias = None
            if bias is None:
                _fail(node, f"bias of shape {C.shape} is not per output channel")
    if dyn_c is None:
        _gemm_out(m, node, x, np.ascontiguousarray(W), bias, node.output[0])
        return
    mid = m.temp(f"{node.output[0]}/noC")
    _gemm_out(m, node, x, np.ascontiguousarray(W), bias, mid)
    c = m.ref(dyn_c)
    beta = float(attrs.get("beta", 1.0))
    if beta != 1.0:
        scaled = m.temp(f"{node.output[0]}/betaC")
        c = m.emit("Mul", [c, m.add_const(f"{node.name}/beta", np.array(beta))], scaled, {}, node.name + "/beta")
    m.emit("Add", [mid, c], node.output[0], {}, node.name + "/C")


@implements("import", "MatMul", emits=("Gemm", "Reshape", "MatMul"))
def matmul(m, node, ins, attrs):
    """A constant 2-D right operand is a dense layer (Gemm); anything else with an
    activation on the left is a MatMul of two operands (attention scores, bilinear forms)."""
    if m.is_const(ins[0]):
        _fail(node, "a constant left operand is not supported", "put the activation on the left (transpose)")
    ra, rb = len(m.shape(ins[0])), len(m.shape(ins[1]))
    if min(ra, rb) < 2:
        _fail(node, f"a rank-{min(ra, rb)} operand is not supported (only matrices and batches of them)",
              "unsqueeze the vector to a matrix before the product")
    Bw = m.value(ins[1])
    if Bw is not None and np.ndim(Bw) == 2:
        Bw = np.asarray(Bw, np.float32)
        _gemm_out(m, node, ins[0], np.ascontiguousarray(Bw.T), np.zeros(Bw.shape[1], np.float32), node.output[0])
        return
    m.emit("MatMul", [m.ref(ins[0]), m.ref(ins[1])], node.output[0], {}, node.name)


@implements("import", "BatchNormalization", emits=("BatchNormalization",))
def batchnorm(m, node, ins, attrs):
    if attrs.get("training_mode", 0):
        _fail(node, "training_mode=1 is not supported", "export in eval mode (training=TrainingMode.EVAL)")
    shape = m.shape(ins[0])
    if len(shape) < 2:
        _fail(node, f"input rank {len(shape)} has no channel axis")
    c = shape[1]
    params = []
    for n, what in zip(ins[1:5], ("scale", "bias", "mean", "var")):
        p = np.asarray(m.need_const(n, what, node), np.float32)
        if p.size != c:
            _fail(node, f"{what} has {p.size} values for {c} channels")
        params.append(p.reshape(c))
    eps = float(attrs.get("epsilon", 1e-5))
    if not np.all(params[3].astype(np.float64) + eps > 0):
        _fail(node, f"variance + epsilon ({eps:g}) is not positive in every channel",
              "the BatchNorm statistics are broken: re-export the model")
    names = [m.add_const(f"{node.name}/{k}", p) for k, p in zip(("scale", "B", "mean", "var"), params)]
    m.emit("BatchNormalization", [m.ref(ins[0])] + names, node.output[0], {"epsilon": eps}, node.name)


# ---- elementwise ------------------------------------------------------------------------

def _unary(op, **defaults):
    def f(m, node, ins, attrs):
        a = {k: float(attrs.get(k, v)) for k, v in defaults.items()}
        m.emit(op, [m.ref(ins[0])], node.output[0], a, node.name)
    return f


@implements("import", "Clip", emits=("Clip",))
def clip(m, node, ins, attrs):
    lo, hi = attrs.get("min", -INF), attrs.get("max", INF)
    for idx, key in ((1, "min"), (2, "max")):
        if len(ins) > idx and ins[idx]:
            v = m.need_const(ins[idx], f"the {key} bound", node)
            if key == "min":
                lo = float(np.asarray(v).reshape(-1)[0])
            else:
                hi = float(np.asarray(v).reshape(-1)[0])
    m.emit("Clip", [m.ref(ins[0])], node.output[0], {"min": float(lo), "max": float(hi)}, node.name)


@implements("import", "PRelu", emits=("PRelu",))
def prelu(m, node, ins, attrs):
    xs = m.shape(ins[0])
    s = np.asarray(m.need_const(ins[1], "the slope", node), np.float32)
    c = xs[1] if len(xs) > 1 else 1
    if s.size not in (1, c):
        _fail(node, f"slope of shape {s.shape} is not per channel (axis 1) or scalar")
    # Canonical slope shape: (C or 1, 1, ...), which broadcasts along axis 1 of x.
    s = s.reshape((s.size,) + (1,) * max(len(xs) - 2, 0))
    m.emit("PRelu", [m.ref(ins[0]), m.add_const(f"{node.name}/slope", s)], node.output[0], {}, node.name)


@implements("import", "Pow", emits=("Mul", "Sqrt", "Pow", "Identity"))
def pow_(m, node, ins, attrs):
    e = m.value(ins[1])
    if m.is_const(ins[0]) or e is None or np.size(e) != 1:
        _fail(node, "only an activation raised to one constant exponent is supported",
              "use a constant scalar exponent")
    e = float(np.ravel(e)[0])
    x, out = m.ref(ins[0]), node.output[0]
    if not np.isfinite(e):
        _fail(node, f"exponent {e} is not finite")
    if e == 2.0:
        m.emit("Mul", [x, x], out, {}, node.name)
    elif e == 1.0:
        m.emit("Identity", [x], out, {}, node.name)
    elif e == 0.5:
        m.emit("Sqrt", [x], out, {}, node.name)
    else:  # a lookup table after quantization
        m.emit("Pow", [x], out, {"exponent": e}, node.name)


def _binary(op):
    """Add, Mul, Sub, Div. Sub/Div by a constant become Add/Mul (negated / reciprocal
    constant), so the quantizer sees only Add and Mul; constants go second. Division by an
    activation is a Mul by its reciprocal (Pow -1)."""
    def f(m, node, ins, attrs):
        a, b = ins[0], ins[1]
        ca, cb = m.value(a), m.value(b)
        out = node.output[0]
        if op in ("Add", "Mul"):
            if ca is not None:
                a, b, ca, cb = b, a, cb, ca
            m.emit(op, [m.ref(a), _const_operand(m, node, b, cb)], out, {}, node.name)
        elif op == "Sub":
            if cb is not None:
                m.emit("Add", [m.ref(a), m.add_const(f"{node.name}/neg", -np.asarray(cb, np.float32))], out, {}, node.name)
                return
            neg = m.temp(f"{out}/neg")
            m.emit("Mul", [m.ref(b), m.add_const(f"{node.name}/minus1", np.array(-1.0))], neg, {}, node.name + "/neg")
            if ca is not None:
                m.emit("Add", [neg, m.add_const(f"{node.name}/a", ca)], out, {}, node.name)
            else:
                m.emit("Add", [m.ref(a), neg], out, {}, node.name)
        else:  # Div
            if cb is None:  # a / b = a * b ** -1, the reciprocal a lookup table after quantization
                recip = m.temp(f"{out}/recip")
                m.emit("Pow", [m.ref(b)], recip, {"exponent": -1.0}, node.name + "/recip")
                m.emit("Mul", [recip, _const_operand(m, node, a, ca)], out, {}, node.name)
                return
            if np.any(np.asarray(cb) == 0):
                _fail(node, "the constant divisor holds zeros", "divide by non-zero constants")
            m.emit("Mul", [m.ref(a), m.add_const(f"{node.name}/recip", 1.0 / np.asarray(cb, np.float64))], out, {}, node.name)
    return f


def _const_operand(m, node, name, value):
    if value is None:
        return m.ref(name)
    return m.add_const(name, value)


# ---- data movement ------------------------------------------------------------------------

@implements("import", "Concat", emits=("Concat",))
def concat(m, node, ins, attrs):
    ax = axis(node, attrs["axis"], len(m.shape(ins[0])))
    m.emit("Concat", [m.ref(i) for i in ins], node.output[0], {"axis": ax}, node.name)


def _reshape_to(m, node, x, shape):
    m.emit("Reshape", [m.ref(x)], node.output[0], {"shape": [int(d) for d in shape]}, node.name)


@implements("import", "Reshape", emits=("Reshape",))
def reshape(m, node, ins, attrs):
    target = m.need_const(ins[1], "the target shape", node)
    try:
        shape = resolve_reshape(m.shape(ins[0]), np.asarray(target).reshape(-1), bool(attrs.get("allowzero", 0)))
    except ValueError as e:
        _fail(node, str(e))
    _reshape_to(m, node, ins[0], shape)


@implements("import", "Flatten", emits=("Reshape",))
def flatten(m, node, ins, attrs):
    s = m.shape(ins[0])
    ax = axis(node, attrs.get("axis", 1), len(s), inclusive=True)
    _reshape_to(m, node, ins[0], (int(np.prod(s[:ax])), int(np.prod(s[ax:]))))


def _axes_of(m, node, ins, attrs):
    if len(ins) > 1 and ins[1]:
        return [int(a) for a in np.asarray(m.need_const(ins[1], "axes", node)).reshape(-1)]
    a = attrs.get("axes")
    return None if a is None else [int(v) for v in a]


@implements("import", "Squeeze", emits=("Reshape",))
def squeeze(m, node, ins, attrs):
    s = m.shape(ins[0])
    axes = _axes_of(m, node, ins, attrs)
    axes = [i for i, d in enumerate(s) if d == 1] if axes is None else [axis(node, a, len(s), "axes") for a in axes]
    if any(s[a] != 1 for a in axes):
        _fail(node, f"cannot squeeze axes {axes} of shape {s}")
    _reshape_to(m, node, ins[0], [d for i, d in enumerate(s) if i not in axes])


@implements("import", "Unsqueeze", emits=("Reshape",))
def unsqueeze(m, node, ins, attrs):
    s = list(m.shape(ins[0]))
    axes = _axes_of(m, node, ins, attrs) or []
    r = len(s) + len(axes)
    where = sorted(axis(node, a, r, "axes") for a in axes)
    if len(set(where)) != len(where):
        _fail(node, f"axes {axes} repeat an axis")
    for a in where:
        s.insert(a, 1)
    _reshape_to(m, node, ins[0], s)


@implements("import", "Transpose", emits=("Transpose",))
def transpose(m, node, ins, attrs):
    r = len(m.shape(ins[0]))
    perm = [int(p) for p in attrs.get("perm", list(range(r))[::-1])]
    if sorted(perm) != list(range(r)):
        _fail(node, f"perm {perm} is not a permutation of the {r} axes")
    m.emit("Transpose", [m.ref(ins[0])], node.output[0], {"perm": perm}, node.name)


@implements("import", "Softmax", emits=("Softmax",))
def softmax(m, node, ins, attrs):
    r = len(m.shape(ins[0]))
    ax = axis(node, attrs.get("axis", -1 if m.opset >= 13 else 1), r)
    m.emit("Softmax", [m.ref(ins[0])], node.output[0], {"axis": ax}, node.name)


@implements("import", "Identity", "Dropout", emits=("Identity",))
def identity(m, node, ins, attrs):
    m.emit("Identity", [m.ref(ins[0])], node.output[0], {}, node.name)


@implements("import", "Cast", emits=("Identity",))
def cast(m, node, ins, attrs):
    from onnx import TensorProto
    if attrs.get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        _fail(node, "a cast of an activation to a non-float type is not supported")
    identity(m, node, ins, attrs)


# ---- pooling -------------------------------------------------------------------------------

def _pool_geometry(m, node, attrs, x, lifted):
    k = [int(v) for v in attrs["kernel_shape"]]
    kernel = [1] + k if lifted else k
    strides = _spatial_attrs(node, attrs, lifted, "strides", 1)
    dil = _spatial_attrs(node, attrs, lifted, "dilations", 1)
    spatial = m.g.tensors[x].shape[2:]
    pads = resolve_pads(node, _lift_pads(attrs, lifted), spatial, kernel, strides, dil)
    ceil = bool(attrs.get("ceil_mode", 0))
    if ceil:
        for i in range(2):
            pads[i + 2] += ceil_extra_pad(spatial[i], kernel[i], strides[i], pads[i], pads[i + 2], dil[i])
    return kernel, strides, pads, dil, ceil


@implements("import", "MaxPool", emits=("MaxPool", "Reshape"))
def maxpool(m, node, ins, attrs):
    x, lifted = _lift_1d(m, node, ins[0])
    kernel, strides, pads, dil, _ = _pool_geometry(m, node, attrs, x, lifted)
    # Padding never wins a max, so ceil_mode's extra end padding is exact.
    _emit_spatial(m, node, "MaxPool", [x], {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dil}, lifted)


@implements("import", "AveragePool", emits=("AveragePool", "Reshape"))
def avgpool(m, node, ins, attrs):
    x, lifted = _lift_1d(m, node, ins[0])
    if any(int(d) != 1 for d in attrs.get("dilations", [])):
        _fail(node, "dilated average pooling is not supported")
    cip = int(attrs.get("count_include_pad", 0))
    before = resolve_pads(node, _lift_pads(attrs, lifted), m.g.tensors[x].shape[2:],
                          ([1] if lifted else []) + [int(v) for v in attrs["kernel_shape"]],
                          _spatial_attrs(node, attrs, lifted, "strides", 1), [1, 1])
    kernel, strides, pads, _, _ = _pool_geometry(m, node, attrs, x, lifted)
    if cip and pads != before:
        # The ceil-mode window that hangs past the padding divides by fewer taps than
        # kH*kW in PyTorch/onnxruntime; the canonical op cannot say that.
        _fail(node, "ceil_mode=1 with count_include_pad=1 is not supported",
              "export with ceil_mode=False or count_include_pad=False")
    _emit_spatial(m, node, "AveragePool", [x],
                  {"kernel": kernel, "strides": strides, "pads": pads, "count_include_pad": cip}, lifted)


@implements("import", "GlobalAveragePool", emits=("GlobalAveragePool", "Reshape"))
def global_avgpool(m, node, ins, attrs):
    x, lifted = _lift_1d(m, node, ins[0])
    _emit_spatial(m, node, "GlobalAveragePool", [x], {}, lifted)


@implements("import", "GlobalMaxPool", emits=("MaxPool", "Reshape"))
def global_maxpool(m, node, ins, attrs):
    x, lifted = _lift_1d(m, node, ins[0])
    h, w = m.g.tensors[x].shape[2:]
    _emit_spatial(m, node, "MaxPool", [x], {"kernel": [h, w], "strides": [1, 1], "pads": [0, 0, 0, 0],
                                            "dilations": [1, 1]}, lifted)


def _reduce(m, node, ins, attrs, op: str) -> None:
    """Mean / max over any non-batch axes -> a pooling op over the reduced elements.

    Rank 4 over (2, 3) is the pool itself. Otherwise the reduced axes are moved last (a
    Transpose, when they are not trailing already) and x is viewed as (N, M, K, 1) with K
    the reduced elements, so the batch axis stays first and a batched run still works.
    """
    s = m.shape(ins[0])
    axes = _axes_of(m, node, ins, attrs)
    r = len(s)
    if not axes and attrs.get("noop_with_empty_axes", 0):
        identity(m, node, ins, attrs)
        return
    axes = sorted({axis(node, a, r, "axes") for a in (axes or range(r))})
    keep = int(attrs.get("keepdims", 1))
    if axes[0] == 0:
        _fail(node, f"{node.op_type} over axes {axes} includes axis 0, the batch axis",
              "reduce over the other axes (e.g. x.mean((2, 3)))")
    out_shape = [1 if i in axes else d for i, d in enumerate(s)] if keep else \
        [d for i, d in enumerate(s) if i not in axes]
    global_pool = {"GlobalAveragePool": {},
                   "MaxPool": {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]}}[op]
    if r == 4 and axes == [2, 3]:
        if keep:
            m.emit(op, [m.ref(ins[0])], node.output[0],
                   {"kernel": [s[2], s[3]], **global_pool} if op == "MaxPool" else {}, node.name)
            return
        x = m.ref(ins[0])
    else:
        x = m.ref(ins[0])
        kept = [i for i in range(r) if i not in axes]
        if axes != list(range(r - len(axes), r)):
            moved = m.temp(f"{node.output[0]}/reduced_last")
            x = m.emit("Transpose", [x], moved, {"perm": kept + axes}, node.name + "/reduced_last")
        k = int(np.prod([s[a] for a in axes]))
        view = m.temp(f"{node.output[0]}/as4d")
        x = m.emit("Reshape", [x], view, {"shape": [s[0], int(np.prod([s[a] for a in kept[1:]])), k, 1]},
                   node.name + "/as4d")
    h, w = m.shape(x)[2:]
    tmp = m.temp(f"{node.output[0]}/pool")
    m.emit(op, [x], tmp, {"kernel": [h, w], **global_pool} if op == "MaxPool" else {}, node.name)
    m.emit("Reshape", [tmp], node.output[0], {"shape": out_shape}, node.name + "/out")


@implements("import", "ReduceMean", emits=("GlobalAveragePool", "Transpose", "Reshape", "Identity"))
def reduce_mean(m, node, ins, attrs):
    _reduce(m, node, ins, attrs, "GlobalAveragePool")


@implements("import", "ReduceMax", emits=("MaxPool", "Transpose", "Reshape", "Identity"))
def reduce_max(m, node, ins, attrs):
    _reduce(m, node, ins, attrs, "MaxPool")


for _op in ("Relu", "Sigmoid", "Tanh", "HardSwish", "Sqrt"):
    implements("import", _op, emits=(_op,))(_unary(_op))
implements("import", "HardSigmoid", emits=("HardSigmoid",))(_unary("HardSigmoid", alpha=0.2, beta=0.5))
implements("import", "LeakyRelu", emits=("LeakyRelu",))(_unary("LeakyRelu", alpha=0.01))
implements("import", "Add", emits=("Add",))(_binary("Add"))
implements("import", "Mul", emits=("Mul",))(_binary("Mul"))
implements("import", "Sub", emits=("Add", "Mul"))(_binary("Sub"))
implements("import", "Div", emits=("Mul", "Pow"))(_binary("Div"))


@implements("import", "Reciprocal", emits=("Pow",))
def reciprocal(m, node, ins, attrs):
    m.emit("Pow", [m.ref(ins[0])], node.output[0], {"exponent": -1.0}, node.name)
