"""One emitter per ai.edgeq op: node -> the kernel call of eq_kernels.h that runs it.

Each emitter is registered with the C kernel(s) it writes calls to (`kernel=CKernel(...)`,
edgeq/codegen/kernels.py: one registration per variant) and receives the kernel chosen for
the node. It returns a `Call`: the params struct (type and field values, written as a
`static const` struct so it lives in flash), the kernel function and its arguments as C
expressions. `Ctx` turns tensor names into C expressions: `arena + OFFSET` for activations
(from the memory plan) and the identifier of a `static const` array for constants.
Attribute conventions are docs/semantics.md's; layouts are eq_kernels.h's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeq.codegen.kernels import CKernel, im2col_scratch
from edgeq.codegen.layout import physical_transpose
from edgeq.errors import EdgeqError
from edgeq.ir import Node
from edgeq.ops import implements

BCAST_RANK = 4  # EQ_BCAST_RANK
MAX_RANK = 6    # EQ_MAX_RANK


@dataclass
class Call:
    fn: str
    args: list[str]
    ptype: str | None = None                 # params struct type, passed as &p first
    fields: dict = field(default_factory=dict)
    pre: list[str] = field(default_factory=list)  # extra declarations before the call
    parts: list[tuple[dict, list[str]]] = field(default_factory=list)  # (fields, args) per call, if several


def _prod(dims) -> int:
    return int(np.prod(dims, dtype=np.int64)) if len(dims) else 1


def _i(node: Node, key: str, default=0) -> int:
    return int(node.attr(key, default))


def _clamp(node: Node) -> dict:
    return {"act_min": _i(node, "act_min", -128), "act_max": _i(node, "act_max", 127)}


def _spatial(node: Node, x_shape, k_hw):
    """(stride_h, stride_w, pads t/l/b/r, dilation_h, dilation_w); 1-D ([N,C,L]) is H = 1."""
    nd = len(x_shape) - 2
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    pads = [int(p) for p in node.attr("pads", [0] * 2 * nd)]
    dil = [int(d) for d in node.attr("dilations", [1] * nd)]
    if nd == 1:
        strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
    return {"stride_h": strides[0], "stride_w": strides[1], "pad_top": pads[0], "pad_left": pads[1],
            "pad_bottom": pads[2], "pad_right": pads[3], "dilation_h": dil[0], "dilation_w": dil[1]}


def _hw(shape):
    """(H, W) of an [N, C, H, W] or [N, C, L] tensor."""
    return (1, shape[2]) if len(shape) == 3 else (shape[2], shape[3])


def _weights(c, n: Node, k: CKernel) -> str:
    """The weights array of a QConv/QGemm as the kernel reads it: int8 as they are, or (the
    _s4 kernels) packed two per byte (eq_kernels.h), which halves their flash."""
    if k.weight_storage == "int4x2":
        return c.packed_s4(n.inputs[1], role="weights")
    return c.const(n.inputs[1], role="weights")


# Layers: weights of 5..8 bits run the int8 kernel, of 2..4 bits the _s4 one (packed two
# per byte); both take an optional im2col scratch (NULL: the direct loops, same bytes).
IM2COL = {"scratch": im2col_scratch, "scratch_optional": True}


@implements("c", "QConv", kernel=CKernel("eq_conv2d_s4", (2, 4), "int4x2", **IM2COL))
@implements("c", "QConv", kernel=CKernel("eq_conv2d_s8", (5, 8), **IM2COL))
def conv(c, n: Node, k: CKernel) -> Call:
    x, w, y = c.shape(n.inputs[0]), c.shape(n.inputs[1]), c.shape(n.outputs[0])
    (ih, iw), (oh, ow), (kh, kw) = _hw(x), _hw(y), _hw(w)
    fields = {"batch": x[0], "in_c": x[1], "in_h": ih, "in_w": iw,
              "out_c": y[1], "out_h": oh, "out_w": ow, "kernel_h": kh, "kernel_w": kw,
              **_spatial(n, x, (kh, kw)), "groups": _i(n, "group", 1),
              "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"), **_clamp(n)}
    args = [c.buf(n.inputs[0]), _weights(c, n, k), c.opt(n, 2, "bias"),
            c.opt(n, 3, "mult"), c.opt(n, 4, "shift"), c.scratch(n), c.buf(n.outputs[0])]
    return Call(k.function, args, "eq_conv2d_params", fields)


@implements("c", "QGemm", kernel=CKernel("eq_fully_connected_s4", (2, 4), "int4x2", **IM2COL))
@implements("c", "QGemm", kernel=CKernel("eq_fully_connected_s8", (5, 8), **IM2COL))
def gemm(c, n: Node, k: CKernel) -> Call:
    x, w = c.shape(n.inputs[0]), c.shape(n.inputs[1])
    fields = {"batch": x[0], "in_features": _prod(x[1:]), "out_features": w[0],
              "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"), **_clamp(n)}
    args = [c.buf(n.inputs[0]), _weights(c, n, k), c.opt(n, 2, "bias"),
            c.opt(n, 3, "mult"), c.opt(n, 4, "shift"), c.scratch(n), c.buf(n.outputs[0])]
    return Call(k.function, args, "eq_fc_params", fields)


def _bcast_dims(shape, name: str) -> list[int]:
    dims = list(shape)
    while len(dims) > BCAST_RANK and dims[0] == 1:
        dims.pop(0)
    if len(dims) > BCAST_RANK:
        raise EdgeqError(f"{name}: broadcasting over {len(shape)}-D tensors is not supported by the C runtime",
                         "keep elementwise operands at rank <= 4")
    return [1] * (BCAST_RANK - len(dims)) + dims


def _binary_dims(c, n: Node) -> dict:
    rank = max(len(c.shape(t)) for t in (n.inputs[0], n.inputs[1], n.outputs[0]))
    pad = lambda s: [1] * (rank - len(s)) + list(s)  # noqa: E731  numpy aligns trailing dims
    return {k: _bcast_dims(pad(c.shape(t)), n.name)
            for k, t in (("a_dims", n.inputs[0]), ("b_dims", n.inputs[1]), ("y_dims", n.outputs[0]))}


@implements("c", "QAdd", kernel=CKernel("eq_add_s8"))
def add(c, n: Node, k: CKernel) -> Call:
    keys = ("a_zp", "b_zp", "y_zp", "left_shift", "a_mult", "a_shift", "b_mult", "b_shift",
            "y_mult", "y_shift")
    fields = {**_binary_dims(c, n), **{k: _i(n, k, 20 if k == "left_shift" else 0) for k in keys},
              **_clamp(n)}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.inputs[1]), c.buf(n.outputs[0])],
                "eq_add_params", fields)


@implements("c", "QMul", kernel=CKernel("eq_mul_s8"))
def mul(c, n: Node, k: CKernel) -> Call:
    keys = ("a_zp", "b_zp", "y_zp", "y_mult", "y_shift")
    fields = {**_binary_dims(c, n), **{k: _i(n, k) for k in keys}, **_clamp(n)}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.inputs[1]), c.buf(n.outputs[0])],
                "eq_mul_params", fields)


@implements("c", "QLut", kernel=CKernel("eq_lut_s8"))
def lut(c, n: Node, k: CKernel) -> Call:
    size = _prod(c.shape(n.inputs[0]))
    return Call(k.function, [str(size), c.buf(n.inputs[0]), c.const(n.inputs[1], "int8", "table"),
                              c.buf(n.outputs[0])])


@implements("c", "QPrelu", kernel=CKernel("eq_prelu_s8"))
def prelu(c, n: Node, k: CKernel) -> Call:
    x = c.shape(n.inputs[0])
    pos_mult, pos_shift = (int(np.ravel(c.graph.const(t))[0]) for t in n.inputs[1:3])
    fields = {"batch": x[0], "channels": x[1] if len(x) > 1 else 1, "inner": _prod(x[2:]),
              "neg_channels": c.graph.tensors[n.inputs[3]].size,
              "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"),
              "pos_mult": pos_mult, "pos_shift": pos_shift, **_clamp(n)}
    args = [c.buf(n.inputs[0]), c.const(n.inputs[3], "int32", "neg_mult"),
            c.const(n.inputs[4], "int32", "neg_shift"), c.const(n.inputs[5], "int32", "neg_sign"),
            c.buf(n.outputs[0])]
    return Call(k.function, args, "eq_prelu_params", fields)


def _pool_fields(c, n: Node) -> dict:
    x, y = c.shape(n.inputs[0]), c.shape(n.outputs[0])
    (ih, iw), (oh, ow) = _hw(x), _hw(y)
    kern = [int(k) for k in n.attr("kernel")]
    kh, kw = (1, kern[0]) if len(kern) == 1 else kern
    return {"batch": x[0], "channels": x[1], "in_h": ih, "in_w": iw, "out_h": oh, "out_w": ow,
            "kernel_h": kh, "kernel_w": kw, **_spatial(n, x, (kh, kw)),
            "count_include_pad": _i(n, "count_include_pad"), "x_zp": _i(n, "x_zp"), **_clamp(n)}


@implements("c", "QMaxPool", kernel=CKernel("eq_maxpool_s8"))
def maxpool(c, n: Node, k: CKernel) -> Call:
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])],
                "eq_pool_params", _pool_fields(c, n))


@implements("c", "QAvgPool", kernel=CKernel("eq_avgpool_s8"))
def avgpool(c, n: Node, k: CKernel) -> Call:
    recip = c.attr_array(n, "recip", "int32")
    rshift = c.attr_array(n, "rshift", "int32")
    return Call(k.function, [c.buf(n.inputs[0]), recip, rshift, c.buf(n.outputs[0])],
                "eq_pool_params", _pool_fields(c, n))


@implements("c", "QSoftmax", kernel=CKernel("eq_softmax_s8"))
def softmax(c, n: Node, k: CKernel) -> Call:
    x = c.shape(n.inputs[0])
    axis = _i(n, "axis", -1) % len(x)
    fields = {"outer": _prod(x[:axis]), "depth": x[axis], "inner": _prod(x[axis + 1:]),
              "input_mult": _i(n, "input_mult"), "input_left_shift": _i(n, "input_left_shift"),
              "diff_min": _i(n, "diff_min")}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_softmax_params", fields)


@implements("c", "QRequant", kernel=CKernel("eq_requant_s8"))
def requant(c, n: Node, k: CKernel) -> Call:
    fields = {"size": _prod(c.shape(n.inputs[0])), "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"),
              "mult": _i(n, "mult"), "shift": _i(n, "shift")}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_requant_params", fields)


@implements("c", "QConcat", kernel=CKernel("eq_concat_s8"))
def concat(c, n: Node, k: CKernel) -> Call:
    y = c.shape(n.outputs[0])
    axis = _i(n, "axis") % len(y)
    inner = _prod(y[axis + 1:])
    chunks = [c.shape(t)[axis] * inner for t in n.inputs]
    count = len(n.inputs)
    pre = [f"const int8_t *const ins[{count}] = {{{', '.join(c.buf(t) for t in n.inputs)}}};",
           f"static const int32_t chunk[{count}] = {{{', '.join(map(str, chunks))}}};"]
    return Call(k.function, [str(count), "ins", "chunk", str(_prod(y[:axis])), c.buf(n.outputs[0])],
                pre=pre)


@implements("c", "QReshape", kernel=CKernel("eq_reshape_s8"))
def reshape(c, n: Node, k: CKernel) -> Call | None:
    """An alias in the memory plan: nothing to run (a copy only if the plan kept it apart)."""
    src, dst = c.buf(n.inputs[0]), c.buf(n.outputs[0])
    if src == dst:
        return None
    return Call(k.function, [str(_prod(c.shape(n.inputs[0]))), src, dst])


def _ranked(dims, name: str) -> list[int]:
    if not 1 <= len(dims) <= MAX_RANK:
        raise EdgeqError(f"{name}: rank {len(dims)} exceeds the C runtime's {MAX_RANK}",
                         "reshape the model to rank <= 6")
    return list(dims)


@implements("c", "QTranspose", kernel=CKernel("eq_transpose_s8"))
def transpose(c, n: Node, k: CKernel) -> Call:
    """Moves the stored bytes: the logical permutation between the layouts the two tensors
    are stored in (layout.py; both NCHW: the permutation itself)."""
    x = _ranked(c.shape(n.inputs[0]), n.name)
    perm = n.attr("perm")
    perm = list(range(len(x)))[::-1] if perm is None else [int(p) for p in perm]
    dims, perm = physical_transpose(x, perm, c.layout(n.inputs[0]), c.layout(n.outputs[0]))
    fields = {"rank": len(x), "in_dims": dims, "perm": perm}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_transpose_params", fields)


@implements("c", "QPad", kernel=CKernel("eq_pad_s8"))
def pad(c, n: Node, k: CKernel) -> Call:
    x = _ranked(c.shape(n.inputs[0]), n.name)
    pads = [int(p) for p in n.attr("pads")]
    r = len(x)
    fields = {"rank": r, "in_dims": x, "pad_begin": pads[:r], "pad_end": pads[r:],
              "value": _i(n, "value", _i(n, "x_zp"))}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_pad_params", fields)



@implements("c", "QGather", kernel=CKernel("eq_gather_s8"))
def gather(c, n: Node, k: CKernel) -> Call:
    x = c.shape(n.inputs[0])
    axis = _i(n, "axis")
    indices = [int(i) for i in n.attr("indices")]
    fields = {"outer": _prod(x[:axis]), "in_len": x[axis], "out_len": len(indices), "inner": _prod(x[axis + 1:])}
    return Call(k.function, [c.attr_array(n, "indices", "int32"), c.buf(n.inputs[0]), c.buf(n.outputs[0])],
                "eq_gather_params", fields)


@implements("c", "QResizeBilinear", kernel=CKernel("eq_resize_bilinear_s8"))
def resize_bilinear(c, n: Node, k: CKernel) -> Call:
    x, y = c.shape(n.inputs[0]), c.shape(n.outputs[0])
    fields = {"batch": x[0], "channels": x[1], "in_h": x[2], "in_w": x[3], "out_h": y[2], "out_w": y[3]}
    return Call(k.function, [c.attr_array(n, "y_table", "int32"), c.attr_array(n, "x_table", "int32"),
                             c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_resize_params", fields)


def _batch_stride(dims, out_batch, size: int, name: str) -> int:
    """A matmul operand's step between the batch's matrices: `size` when its leading dims
    are the output's, 0 when they are all 1 (one matrix for every product)."""
    lead = [int(d) for d in dims[:-2]]
    lead = [1] * (len(out_batch) - len(lead)) + lead
    if lead == list(out_batch):
        return size
    if all(d == 1 for d in lead):
        return 0
    raise EdgeqError(f"{name}: the C runtime's matmul broadcasts a whole operand over the batch, "
                     f"not leading dims {lead} against {list(out_batch)}", "use --target reference or tflite")


@implements("c", "QMatMul", kernel=CKernel("eq_matmul_s8"))
def matmul(c, n: Node, k: CKernel) -> Call:
    a, b, y = c.shape(n.inputs[0]), c.shape(n.inputs[1]), c.shape(n.outputs[0])
    m_, k_, n_ = a[-2], a[-1], b[-1]
    out_batch = y[:-2]
    fields = {"batch": _prod(out_batch), "m": m_, "k": k_, "n": n_,
              "a_batch_stride": _batch_stride(a, out_batch, m_ * k_, n.name),
              "b_batch_stride": _batch_stride(b, out_batch, k_ * n_, n.name),
              **{key: _i(n, key) for key in ("a_zp", "b_zp", "y_zp", "y_mult", "y_shift")}, **_clamp(n)}
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.inputs[1]), c.buf(n.outputs[0])],
                "eq_matmul_params", fields)
