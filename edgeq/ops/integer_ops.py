"""The integer ops (domain "ai.edgeq"), one declaration each: docs/semantics.md's operator
table in code (the semantics themselves are the reference kernels, edgeq/reference/).

Attributes with a default may be absent (the kernels use the default); `None` marks a
default that depends on the input's rank (strides, pads, dilations of 1-D and 2-D ops).
`inplace_inputs` is a contract on every implementation of the op (C, TVM, ...): it must
stay correct when its output buffer is one of these inputs, because the memory planner
puts the output there when that input dies at this node.
"""
from __future__ import annotations

from edgeq.ir import QDOMAIN
from edgeq.ops import shapes
from edgeq.ops.registry import REGISTRY, Attr, Input, OpDecl

X = (Input("x"),)
CLAMP = (Attr("act_min", "int", -128), Attr("act_max", "int", 127))
ZPS = (Attr("x_zp", "int", 0), Attr("y_zp", "int", 0))
WINDOW = (Attr("strides", "ints", None), Attr("pads", "ints", None), Attr("dilations", "ints", None))
LAYER_INPUTS = (Input("x"), Input("w", const=True), Input("bias", const=True, optional=True),
                Input("mult", const=True), Input("shift", const=True))


def _int(name: str, doc: str, inputs=X, attrs=(), shape=shapes.same, **props) -> OpDecl:
    return REGISTRY.declare(OpDecl(name, QDOMAIN, doc, tuple(inputs), tuple(attrs), shape, **props))


def _ints(*names: str) -> tuple[Attr, ...]:
    return tuple(Attr(n, "int") for n in names)


def _reshape(ins: list[tuple], attrs) -> tuple:
    return shapes.resolve_reshape(tuple(ins[0]), attrs["shape"])  # 0 keeps the input's dim


_int("QConv", "int8 conv (groups, depthwise, dilation, 1-D as H = 1), int32 accumulation, per-channel requant",
     LAYER_INPUTS, WINDOW + (Attr("group", "int", 1),) + ZPS + CLAMP, shapes.conv_1d_or_2d, weighted=True)
_int("QGemm", "int8 fully connected (x flattened to [N, K]), per-channel requant", LAYER_INPUTS,
     ZPS + CLAMP, shapes.gemm_flattened, weighted=True)
_int("QAdd", "TFLite ADD: both inputs rescaled to a common scale, summed, requantized",
     (Input("a"), Input("b")),
     _ints("a_zp", "b_zp", "y_zp") + (Attr("left_shift", "int", 20),)
     + _ints("a_mult", "a_shift", "b_mult", "b_shift", "y_mult", "y_shift") + CLAMP,
     shapes.broadcast_two, inplace_inputs=(0, 1))
_int("QMul", "TFLite MUL: (a - a_zp) (b - b_zp) requantized", (Input("a"), Input("b")),
     _ints("a_zp", "b_zp", "y_zp", "y_mult", "y_shift") + CLAMP, shapes.broadcast_two)
_int("QLut", "y = table[x + 128], a 256-entry table built at compile time",
     (Input("x"), Input("table", const=True)), (Attr("fn", "str", ""),), inplace_inputs=(0,))
_int("QPrelu", "per-channel PRelu along axis 1 with separate positive and negative multipliers",
     (Input("x"),) + tuple(Input(n, const=True) for n in ("pos_mult", "pos_shift", "neg_mult",
                                                           "neg_shift", "neg_sign")),
     ZPS + CLAMP, inplace_inputs=(0,))
_int("QMaxPool", "max over the window's taps inside the input", X,
     (Attr("kernel", "ints"),) + WINDOW + CLAMP, shapes.pool)
_int("QAvgPool", "mean of the window's taps, divided by an exact reciprocal multiply", X,
     (Attr("kernel", "ints"), Attr("recip", "ints"), Attr("rshift", "ints")) + WINDOW
     + (Attr("count_include_pad", "int", 0), Attr("x_zp", "int", 0)) + CLAMP, shapes.pool)
_int("QSoftmax", "TFLite's int8 SOFTMAX reference kernel; output scale 1/256, zero point -128", X,
     (Attr("axis", "int", -1),) + _ints("input_mult", "input_left_shift", "diff_min")
     + (Attr("beta", "float", 1.0),), axis="any")
_int("QRequant", "TFLite QUANTIZE int8 -> int8", X, _ints("x_zp", "y_zp", "mult", "shift"),
     inplace_inputs=(0,))
_int("QConcat", "a copy along axis; every input carries the output's parameters",
     (Input("x", variadic=True),), (Attr("axis", "int"),), shapes.concat, axis="any")
_int("QReshape", "the contiguous NCHW buffer with a new shape (0 keeps the input's dim)", X,
     (Attr("shape", "ints"),), _reshape, alias=True)
_int("QTranspose", "data movement, axes permuted (default: reversed)", X,
     (Attr("perm", "ints", None),), shapes.transpose)
_int("QPad", "constant padding with an int8 value (default x_zp, else 0)", X,
     (Attr("pads", "ints"), Attr("value", "int", None), Attr("x_zp", "int", 0)), shapes.pad)
_int("QGather", "a copy of x's entries at constant indices along axis; parameters unchanged", X,
     (Attr("axis", "int"), Attr("indices", "ints")), shapes.gather, axis="any")
_int("QResizeBilinear", "bilinear resize of H and W with 10-bit weights from (lo, hi, frac) tables "
     "(TFLite's integer rule); parameters unchanged", X,
     (Attr("y_table", "ints"), Attr("x_table", "ints"), Attr("mode", "str", "")), shapes.resize_tables)
_int("QMatMul", "TFLite BATCH_MATMUL: sum over k of (a - a_zp) (b - b_zp), requantized", (Input("a"), Input("b")),
     _ints("a_zp", "b_zp", "y_zp", "y_mult", "y_shift") + CLAMP, shapes.matmul)
_int("QGatedState", "an int16 recurrent state update: int16 gates from 256-entry tables of the int8 "
     "pre-activations, the two gated products rescaled, summed, saturated to int16",
     (Input("state"), Input("gate"), Input("cand"), Input("gate_table", const=True), Input("cand_table", const=True),
      Input("cand_gate", optional=True), Input("cand_gate_table", const=True, optional=True)),
     _ints("s_mult", "s_shift", "u_mult", "u_shift"))
_int("QNarrow16", "TFLite QUANTIZE int16 -> int8: a symmetric int16 tensor requantized to int8", X,
     _ints("y_zp", "mult", "shift"))
