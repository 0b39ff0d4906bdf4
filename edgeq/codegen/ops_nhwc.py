"""The channels-last (NHWC) emitters: calls of eq_kernels_nhwc.h for the nodes an "nhwc"
build runs channels-last (kernels.choose; layout.py gives their activations that layout).

Each op's kernel comes in three variants, registered here once per ISA: `_c` (portable
C99: any CPU, no scratch, the fallback of a layer the memory plan gave no scratch, and a
second oracle), `_dsp` (Cortex-M4/M7/M33) and `_mve` (Cortex-M55). Weights, biases and
requantization constants are packed at compile time for the variant called
(edgeq.runtime_c.packing: the formats are eq_kernels_nhwc.h's); the input zero point is
folded into the bias. The specialised kernels (1x1 pointwise, depthwise 3x3) register
before the general ones of the same ISA, so they win where their `when` holds.
"""
from __future__ import annotations

import numpy as np

from edgeq.codegen.kernels import CKernel
from edgeq.codegen.ops import Call, _clamp, _hw, _i, _pool_fields, _prod, _spatial
from edgeq.codegen.templates import SPECIALISED_LAYER
from edgeq.ir import Graph, Node
from edgeq.ops import implements
from edgeq.runtime_c import packing

ISAS = ("portable", "dsp", "mve")  # CKernel.isa; packing calls the portable one "c"
WEIGHT_BITS = (5, 8)               # int8 weights only (int4 keeps eq_conv2d_s4, NCHW)


def packing_isa(k: CKernel) -> str:
    return "c" if k.isa == "portable" else k.isa


def _shape(graph: Graph, t: str) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.tensors[t].shape)


def conv_fields(n: Node, graph: Graph) -> dict:
    """eq_conv2d_params of a QConv ([N, C, L] is H = 1, as the NCHW emitter has it)."""
    x, w, y = _shape(graph, n.inputs[0]), _shape(graph, n.inputs[1]), _shape(graph, n.outputs[0])
    (ih, iw), (oh, ow), (kh, kw) = _hw(x), _hw(y), _hw(w)
    return {"batch": x[0], "in_c": x[1], "in_h": ih, "in_w": iw,
            "out_c": y[1], "out_h": oh, "out_w": ow, "kernel_h": kh, "kernel_w": kw,
            **_spatial(n, x, (kh, kw)), "groups": _i(n, "group", 1),
            "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"), **_clamp(n)}


def row_range_fields(f: dict, a: int, b: int) -> tuple[dict, int]:
    """eq_conv2d_params of output rows [a, b) of a conv with params `f`, and the first input
    row they read (the range's input pointer starts there). The pads are what the range
    still has of the image's edges, so out_h = b - a exactly."""
    s, pt, reach = f["stride_h"], f["pad_top"], (f["kernel_h"] - 1) * f["dilation_h"] + 1
    top, bottom = a * s - pt, (b - 1) * s - pt + reach   # input rows [top, bottom) with pads
    lo, hi = max(0, top), min(f["in_h"], bottom)
    return {**f, "in_h": hi - lo, "out_h": b - a, "pad_top": lo - top, "pad_bottom": bottom - hi}, lo


# ---- which conv kernel: the conditions of eq_kernels_nhwc.h ---------------------------------

def _spatial_ok(n: Node, graph: Graph) -> bool:
    return graph is not None and len(_shape(graph, n.inputs[0])) in (3, 4)


def is_depthwise(n: Node, graph: Graph) -> bool:
    if not _spatial_ok(n, graph):
        return False
    x, w, g = _shape(graph, n.inputs[0]), _shape(graph, n.inputs[1]), _i(n, "group", 1)
    return g > 1 and g == x[1] and w[1] == 1


def is_dw3x3(n: Node, graph: Graph) -> bool:
    if not is_depthwise(n, graph):
        return False
    f = conv_fields(n, graph)
    pads = (f["pad_top"], f["pad_left"], f["pad_bottom"], f["pad_right"])
    return ((f["kernel_h"], f["kernel_w"]) == (3, 3) and f["out_c"] == f["in_c"]
            and (f["dilation_h"], f["dilation_w"]) == (1, 1) and max(f["stride_h"], f["stride_w"]) <= 2
            and max(pads) <= 1)


def is_pointwise(n: Node, graph: Graph) -> bool:
    if not _spatial_ok(n, graph):
        return False
    f = conv_fields(n, graph)
    pads = (f["pad_top"], f["pad_left"], f["pad_bottom"], f["pad_right"])
    return (f["kernel_h"], f["kernel_w"]) == (1, 1) and f["groups"] == 1 and max(pads) == 0


def _conv_scratch(kind: str, isa: str):
    return lambda n, graph: packing.scratch_bytes(kind, isa, conv_fields(n, graph))


# ---- emitters -----------------------------------------------------------------------------

def conv_nhwc(c, n: Node, k: CKernel) -> Call:
    isa = packing_isa(k)
    f = conv_fields(n, c.graph)
    w, bias, mult, shift = (c.graph.const(t) if t else None for t in (list(n.inputs[1:5]) + [""] * 4)[:4])
    if k.function.startswith(("eq_nhwc_depthwise", "eq_nhwc_dw3x3")):
        pk = packing.pack_depthwise(w, bias, mult, shift, f["x_zp"], isa)
    else:
        pk = packing.pack_conv(w, bias, mult, shift, f["x_zp"], f["groups"], isa)
    consts = [c.packed_weights(pk.w), c.packed("bias", pk.bias, "bias with x_zp folded in"), c.requant(pk.rq, isa)]
    if n.name in c.plan.chunks:
        return Call(k.function, [], "eq_conv2d_params", f, parts=_row_parts(c, n, f, consts))
    if k.function in SPECIALISED and (c.kernels.specialise or "dw3x3" in k.function):
        return specialised(c, n, k, f, consts, np.asarray(pk.rq), isa)
    return Call(k.function, [c.buf(n.inputs[0]), *consts, c.scratch(n), c.buf(n.outputs[0])], "eq_conv2d_params", f)


# The kernels generated code compiles from their always-inline bodies for each layer's shape
# (eq_nhwc_<kind>_<isa>_body.h; docs/nhwc_kernels.md, "Shape specialisation"): the M55's,
# where it pays (up to 0.2x CMSIS-NN's instructions); on the DSP cores it saved 0-5% for about
# 1 KB of flash per layer, so they call the shared kernels.
SPECIALISED = ("eq_nhwc_pointwise_s8_mve", "eq_nhwc_dw3x3_s8_mve", "eq_nhwc_conv_s8_mve")


def specialised(c, n: Node, k: CKernel, f: dict, consts: list[str], rq: np.ndarray, isa: str) -> Call:
    """A static function of model.c running the kernel's body with this layer's params as a
    `static const` struct. The flags the kernel file finds at run time are constants here:
    dsp all_fast (no channel with shift >= 0), mve left (some lane shifts left); the
    depthwise 3x3's row of x_zp bytes (its padded taps) is a constant array, not scratch."""
    kind = k.function.split("_")[2]  # eq_nhwc_<kind>_s8_<isa>
    header = f"eq_nhwc_{kind}_{isa}_body.h"
    fn = c.names.get(kind, f"l{c.layer}_")
    per_group = [str(f["in_c"] // f["groups"]), str(f["out_c"] // f["groups"])] if kind == "conv" else []
    args = ["&p", *per_group, "x", *consts]
    flag = str(int(np.any(rq[:, 2] != 0))) if isa == "mve" else str(int(np.all(rq[:, 1] >= 0)))
    prologue = ""
    if kind == "conv" or isa == "dsp" and kind == "pointwise":  # the kernel's scratch, word aligned
        work = "int8_t *work = (int8_t *)" if kind == "conv" else "uint32_t *work = (uint32_t *)"
        prologue = f"    {work}(((uintptr_t)scratch + 3u) & ~(uintptr_t)3u);\n"
        args += [flag, "work"]
    elif kind == "pointwise":
        prologue, args = "    (void)scratch;\n", args + [flag]
    else:
        zp_len = packing.dw3x3_zp_row_bytes(f["in_c"], isa)
        zp = c.packed("zp_row", np.full(zp_len, f["x_zp"], np.int8), "x_zp: what the padded taps read")
        prologue = "    (void)scratch;\n"
        args += ([flag] if isa == "mve" else []) + [zp]
    fields = ",\n".join("        " + ", ".join(f".{key} = {int(v)}" for key, v in list(f.items())[i:i + 4])
                         for i in range(0, len(f), 4))
    c.include(header)
    c.define(SPECIALISED_LAYER.substitute(index=c.layer, kernel=k.function, header=header, fn=fn, fields=fields,
                                          prologue=prologue, body=f"eq_nhwc_{kind}_{isa}_body({', '.join(args + ['y'])})"))
    return Call(fn, [c.buf(n.inputs[0]), c.scratch(n), c.buf(n.outputs[0])])


def _row_parts(c, n: Node, f: dict, consts: list[str]) -> list[tuple[dict, list[str]]]:
    """One (params, args) per range of output rows the plan runs the node in (row_chunks.py)."""
    x, y = c.plan.offsets[n.inputs[0]], c.plan.offsets[n.outputs[0]]
    parts = []
    for a, b, scratch in c.plan.chunks[n.name]:
        fields, row = row_range_fields(f, a, b)
        parts.append((fields, [f"edgeq_arena + {x + row * f['in_w'] * f['in_c']}", *consts,
                               f"edgeq_arena + {scratch}", f"edgeq_arena + {y + a * f['out_w'] * f['out_c']}"]))
    return parts


def fc_nhwc(c, n: Node, k: CKernel) -> Call:
    isa = packing_isa(k)
    x, w = c.shape(n.inputs[0]), c.graph.const(n.inputs[1])
    bias, mult, shift = (c.graph.const(t) if t else None for t in (list(n.inputs[2:5]) + [""] * 3)[:3])
    fields = {"batch": x[0], "in_features": _prod(x[1:]), "out_features": w.shape[0],
              "x_zp": _i(n, "x_zp"), "y_zp": _i(n, "y_zp"), **_clamp(n)}
    pk = packing.pack_fc(w, bias, mult, shift, fields["x_zp"], isa)
    args = [c.buf(n.inputs[0]), c.packed_weights(pk.w), c.packed("bias", pk.bias, "bias with x_zp folded in"),
            c.requant(pk.rq, isa), "NULL", c.buf(n.outputs[0])]
    return Call(k.function, args, "eq_fc_params", fields)


def flat_input(n: Node, graph: Graph) -> bool:
    """A Gemm over [N, K] rows (a flatten before it is a layer of its own)."""
    return graph is not None and len(_shape(graph, n.inputs[0])) == 2


def same_shape_add(n: Node, graph: Graph) -> bool:
    return graph is not None and _shape(graph, n.inputs[0]) == _shape(graph, n.inputs[1]) == _shape(graph, n.outputs[0])


def add_nhwc(c, n: Node, k: CKernel) -> Call:
    attrs = {key: int(v) for key, v in n.attrs.items() if isinstance(v, (int, np.integer))}
    for key in ("a_zp", "b_zp", "y_zp", "a_mult", "a_shift", "b_mult", "b_shift", "y_mult", "y_shift"):
        attrs.setdefault(key, 0)
    table_a, table_b, _ = packing.pack_add(attrs)
    fields = {"size": _prod(c.shape(n.outputs[0])), "y_zp": attrs["y_zp"], **_clamp(n)}
    args = [c.buf(n.inputs[0]), c.buf(n.inputs[1]), c.packed("table_a", table_a, "a's rescaling of each int8 value"),
            c.packed("table_b", table_b, "b's rescaling of each int8 value"),
            c.requant(packing.pack_add_rq(attrs, packing_isa(k)), packing_isa(k)), c.buf(n.outputs[0])]
    return Call(k.function, args, "eq_nhwc_add_params", fields)


def pool_ok(n: Node, graph: Graph) -> bool:
    return _spatial_ok(n, graph)


def maxpool_nhwc(c, n: Node, k: CKernel) -> Call:
    return Call(k.function, [c.buf(n.inputs[0]), c.buf(n.outputs[0])], "eq_pool_params", _pool_fields(c, n))


def avgpool_nhwc(c, n: Node, k: CKernel) -> Call:
    recip = c.attr_array(n, "recip", "int32")
    rshift = c.attr_array(n, "rshift", "int32")
    return Call(k.function, [c.buf(n.inputs[0]), recip, rshift, c.scratch(n), c.buf(n.outputs[0])],
                "eq_pool_params", _pool_fields(c, n))


def _avgpool_scratch(isa: str):
    def size(n: Node, graph: Graph) -> int:
        return packing.scratch_bytes("avgpool", isa, {"channels": _shape(graph, n.inputs[0])[1]})
    return size


def _register() -> None:
    for isa in ISAS:
        sfx = "c" if isa == "portable" else isa
        for kind, when in (("dw3x3", is_dw3x3), ("depthwise", is_depthwise), ("pointwise", is_pointwise),
                           ("conv", _spatial_ok)):
            # the MVE depthwise 3x3 is always specialised: its x_zp row is a constant, not scratch
            scratch = None if isa == "portable" or (kind, isa) == ("dw3x3", "mve") else _conv_scratch(kind, sfx)
            implements("c", "QConv", kernel=CKernel(f"eq_nhwc_{kind}_s8_{sfx}", WEIGHT_BITS, isa=isa, layout="nhwc",
                                                    scratch=scratch, when=when))(conv_nhwc)
        implements("c", "QGemm", kernel=CKernel(f"eq_nhwc_fc_s8_{sfx}", WEIGHT_BITS, isa=isa,
                                                layout="nhwc", when=flat_input))(fc_nhwc)
        implements("c", "QAdd", kernel=CKernel(f"eq_nhwc_add_s8_{sfx}", isa=isa, layout="nhwc",
                                               when=same_shape_add))(add_nhwc)
        implements("c", "QMaxPool", kernel=CKernel(f"eq_nhwc_maxpool_s8_{sfx}", isa=isa, layout="nhwc",
                                                   when=pool_ok))(maxpool_nhwc)
        implements("c", "QAvgPool", kernel=CKernel(f"eq_nhwc_avgpool_s8_{sfx}", isa=isa, layout="nhwc",
                                                   scratch=_avgpool_scratch(sfx) if isa == "mve" else None,
                                                   when=pool_ok))(avgpool_nhwc)


_register()
