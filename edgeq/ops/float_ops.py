"""The canonical float ops (domain ""), one declaration each: docs/float_graph.md in code.

Every attribute of the canonical form is explicit on every node (the importer writes them
all); the ones with a default here are optional extras (a fused clamp). `float_fn` is the
op's float semantics in float64 numpy, for the elementwise unary ops: the quantizer builds
their lookup tables from it and tests/test_ops_registry.py checks the torch executor
against it on a dense grid.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.ops import shapes
from edgeq.ops.registry import REGISTRY, Attr, Input, OpDecl

INF = math.inf
X = (Input("x"),)
FUSED_CLAMP = (Attr("act_min", "float", -INF), Attr("act_max", "float", INF))  # fuse_activation's
WINDOW = (Attr("strides", "ints"), Attr("pads", "ints"))


def _float(name: str, doc: str, inputs=X, attrs=(), shape=shapes.same, **props) -> OpDecl:
    return REGISTRY.declare(OpDecl(name, "", doc, tuple(inputs), tuple(attrs), shape, **props))


def _flatten_1x1(node, graph) -> bool:
    """A Reshape of [N, C, 1, ..., 1] to [N, C]: channels map one to one."""
    shape = graph.tensors[node.inputs[0]].shape
    return (len(shape) >= 2 and all(d == 1 for d in shape[2:])
            and tuple(node.attr("shape", ())) in ((shape[0], shape[1]), (-1, shape[1])))


def _unpadded(node, graph) -> bool:
    return not any(node.attr("pads", [0]))


def _pow(x, e: float):
    base = x if float(e).is_integer() else np.maximum(x, 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        return np.power(base, e)


def _clip_bounds(node) -> tuple[float, float]:
    return float(node.attrs.get("min", -INF)), float(node.attrs.get("max", INF))


# ---- layers --------------------------------------------------------------------------------
CONV = _float("Conv", "2-D convolution, NCHW; W [Co, Ci/group, kH, kW], B [Co] always present",
              (Input("x"), Input("W", const=True), Input("B", const=True)),
              WINDOW + (Attr("dilations", "ints"), Attr("group", "int")) + FUSED_CLAMP,
              shapes.conv, weighted=True, clamp_fusable=True)
GEMM = _float("Gemm", "y = x @ W.T + B; x [N, K], W [Co, K], B [Co]",
              (Input("x"), Input("W", const=True), Input("B", const=True)), FUSED_CLAMP,
              shapes.gemm, weighted=True, clamp_fusable=True)
_float("BatchNormalization", "inference-mode batch norm with running statistics (folded by fold_batchnorm)",
       (Input("x"),) + tuple(Input(n, const=True) for n in ("scale", "B", "mean", "var")),
       (Attr("epsilon", "float", onnx=True),))

# ---- elementwise unary -------------------------------------------------------------------------
_float("Relu", "max(x, 0)", as_clamp=lambda node: (0.0, INF),
       float_fn=lambda x, a: np.maximum(x, 0.0))
_float("Clip", "clamp(x, min, max); Relu6 is Clip(0, 6)",
       attrs=(Attr("min", "float"), Attr("max", "float")), as_clamp=_clip_bounds,
       float_fn=lambda x, a: np.clip(x, a.get("min", -np.inf), a.get("max", np.inf)))
_float("Sigmoid", "1 / (1 + exp(-x))", float_fn=lambda x, a: 1.0 / (1.0 + np.exp(-x)))
_float("Tanh", "tanh(x)", float_fn=lambda x, a: np.tanh(x))
_float("HardSwish", "x * clamp(x + 3, 0, 6) / 6",
       float_fn=lambda x, a: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0)
_float("HardSigmoid", "clamp(alpha x + beta, 0, 1)",
       attrs=(Attr("alpha", "float", onnx=True), Attr("beta", "float", onnx=True)),
       float_fn=lambda x, a: np.clip(float(a["alpha"]) * x + float(a["beta"]), 0.0, 1.0))
_float("LeakyRelu", "x if x >= 0 else alpha x", attrs=(Attr("alpha", "float", onnx=True),),
       float_fn=lambda x, a: np.where(x >= 0, x, float(a["alpha"]) * x))
_float("Sqrt", "sqrt(x); a negative x (NaN in ONNX) gives 0",
       float_fn=lambda x, a: np.sqrt(np.maximum(x, 0.0)))
_float("Pow", "x ** exponent for a constant exponent (2 imports as Mul, 0.5 as Sqrt, 1 as Identity); "
       "a negative x with a fractional exponent (NaN in ONNX) gives 0, 0 ** negative gives +inf",
       attrs=(Attr("exponent", "float"),), float_fn=lambda x, a: _pow(x, float(a["exponent"])))
_float("PRelu", "x if x >= 0 else slope x; slope constant, scalar or per channel (axis 1)",
       (Input("x"), Input("slope", const=True)), shape=shapes.broadcast_two, combines=True)

# ---- elementwise binary ------------------------------------------------------------------------
_float("Add", "a + b, numpy broadcasting; either may be a constant",
       (Input("a"), Input("b")), FUSED_CLAMP, shapes.broadcast_two, clamp_fusable=True, combines=True)
_float("Mul", "a * b, numpy broadcasting; either may be a constant",
       (Input("a"), Input("b")), FUSED_CLAMP, shapes.broadcast_two, clamp_fusable=True, combines=True)

_float("GatedState", "a recurrent state update from pre-activations, sigmoid(gate) state + w tanh(cand) with "
       "w = sigmoid(cand_gate), or 1 - sigmoid(gate) without it (LSTM c = f c + i g, GRU h = z h + (1 - z) n)",
       (Input("state"), Input("gate"), Input("cand"), Input("cand_gate", optional=True)))

_float("MatMul", "a @ b of two activations (or a constant b that is not a 2-D weight), numpy batch broadcasting",
       (Input("a"), Input("b")), shape=shapes.matmul, combines=True)

# ---- pooling -----------------------------------------------------------------------------------
_float("MaxPool", "max over the window (ceil_mode folded into pads)", X,
       (Attr("kernel", "ints"),) + WINDOW + (Attr("dilations", "ints"),) + FUSED_CLAMP, shapes.pool,
       keeps_range=True, channel_scale_commutes=True, channel_shift_commutes=True)
_float("AveragePool", "mean over the window's taps inside the input (all kH*kW with count_include_pad)", X,
       (Attr("kernel", "ints"),) + WINDOW + (Attr("count_include_pad", "int"),) + FUSED_CLAMP, shapes.pool,
       keeps_range=True, channel_scale_commutes=True, channel_shift_commutes=_unpadded)
_float("GlobalAveragePool", "mean over H and W (rank 4)", shape=shapes.global_pool,
       keeps_range=True, channel_scale_commutes=True, channel_shift_commutes=True)

# ---- data movement -----------------------------------------------------------------------------
_float("Concat", "concatenation along a non-negative axis", (Input("x", variadic=True),),
       (Attr("axis", "int", onnx=True),), shapes.concat, axis="any", combines=True)
_float("Reshape", "new shape, fully resolved ints (Flatten, Squeeze, Unsqueeze import as this)", X,
       (Attr("shape", "ints"),), shapes.reshape, keeps_range=True,
       channel_scale_commutes=_flatten_1x1, channel_shift_commutes=_flatten_1x1)
_float("Transpose", "axes permuted", X, (Attr("perm", "ints", onnx=True),), shapes.transpose,
       keeps_range=True)
_float("Pad", "constant padding; pads [2 * rank], all begins then all ends", X,
       (Attr("pads", "ints"), Attr("value", "float")), shapes.pad)
_float("Gather", "x's entries at constant indices along a non-batch axis, in the indices' order; "
       "Slice, Split, Gather, Pad (reflect, edge, wrap) and nearest Resize import as this", X,
       (Attr("axis", "int", onnx=True), Attr("indices", "ints")), shapes.gather, axis="any",
       keeps_range=True)
_float("ResizeBilinear", "bilinear resize of H and W (ONNX Resize mode=linear on [N, C, H, W]); "
       "positions by coordinate_transformation_mode with onnxruntime's scales, clamped to the input",
       X, (Attr("sizes", "ints"), Attr("scales", "floats"), Attr("coordinate_transformation_mode", "str")),
       shapes.resize_hw, keeps_range=True)
_float("Softmax", "softmax over the last axis", X, (Attr("axis", "int", onnx=True),), axis="last")
_float("Identity", "x (Dropout imports as this; remove_identity deletes them)",
       keeps_range=True, channel_scale_commutes=True, channel_shift_commutes=True)
