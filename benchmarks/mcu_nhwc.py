"""edgeq's channels-last kernels (runtime_c/include/eq_kernels_nhwc.h) as a per-layer harness
backend: each layer's kernel chosen as the code generator will choose it, its constants
packed by edgeq.runtime_c.packing for the CPU's variant (isa_for_cpu: "dsp" on the M7,
"mve" on the M55), called on the same NHWC input bytes as CMSIS-NN.

`choose(layer)` is the selection the integration phase moves into the op registry:
depthwise 3x3 (multiplier 1, stride <= 2, pads <= 1) -> dw3x3, other depthwise ->
depthwise, 1x1 without padding -> pointwise, other convs -> conv, Gemm -> fc, same-shape
Add -> add, pools -> maxpool / avgpool; softmax keeps eq_softmax_s8 (its last-axis rows are
the same bytes in either layout); an input NHWC->NCHW transpose and reshapes cost nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mcu_harness import Backend, LayerCall, c_array
from mcu_layers import Layer, hw, spatial, to_nhwc
from mcu_profile import library_functions

ROOT = Path(__file__).resolve().parents[1]


def choose(lay: Layer) -> str | None:
    """The eq_nhwc kernel for a layer ("dw3x3", "pointwise", ...), "softmax" for the existing
    eq_softmax_s8, "none" for a layer that runs nothing, None when no NHWC kernel fits."""
    n = lay.node
    if lay.op == "QConv":
        x, w = lay.inputs[0], lay.consts[0]
        (kh, kw), group = hw(w.shape), int(n.attr("group", 1))
        st, pads, dil = spatial(n, x.ndim - 2)
        if group > 1 and group == x.shape[1] and w.shape[1] == 1:
            if (kh, kw) == (3, 3) and w.shape[0] == x.shape[1] and dil == [1, 1] and max(st) <= 2 and max(pads) <= 1:
                return "dw3x3"
            return "depthwise"
        if (kh, kw) == (1, 1) and group == 1 and max(pads) == 0:
            return "pointwise"
        return "conv"
    if lay.op == "QGemm":
        return "fc"
    if lay.op == "QAdd":
        return "add" if lay.inputs[0].shape == lay.inputs[1].shape else None
    if lay.op in ("QAvgPool", "QMaxPool"):
        return "avgpool" if lay.op == "QAvgPool" else "maxpool"
    if lay.op == "QSoftmax":
        return "softmax"
    if lay.op == "QReshape" or (lay.op == "QTranspose" and lay.inputs[0].ndim == 4
                                and list(n.attr("perm", [])) == [0, 3, 1, 2]):
        return "none"
    return None


def _struct(ctype: str, fields: dict) -> str:
    return f"static const {ctype} p = {{" + ", ".join(f".{k} = {int(v)}" for k, v in fields.items()) + "};"


def _rq(name: str, rq: np.ndarray) -> str:
    from edgeq.runtime_c.packing import rq_initializer
    ctype = "eq_rq4" if np.ndim(rq) == 3 else "eq_rq"
    return f"static const {ctype} {name}[{len(rq)}] LAYERDATA = {rq_initializer(rq)};"


def spec_call(lay: Layer, p: str, kernel: str, isa: str, pk, fields: dict, decls: list[str]) -> LayerCall:
    """The shape-specialised form: what generated code does with the always-inline bodies
    (eq_nhwc_<kernel>_<isa>_body.h) and a `static const` params struct, so the compiler
    folds the shape into the loops. Flags the kernel file computes at run time (all_fast,
    left) and the x_zp row are compile-time constants here."""
    c = fields["in_c"]
    struct = ("static const eq_conv2d_params " + f"{p}P = {{" +
              ", ".join(f".{k} = {int(v)}" for k, v in fields.items()) + "};")
    rq = np.asarray(pk.rq)
    args = f"&{p}P, x, (const int8_t *){p}w, {p}b, {p}rq"
    if isa == "mve":
        flag = str(int(np.any(rq[:, 2] != 0)))  # some lane shifts left
    else:
        flag = str(int(np.all(rq[:, 1] >= 0)))  # all_fast: no shift >= 0 channel
    out = list(decls) + [struct]
    if kernel == "pointwise":
        body = (f"eq_nhwc_pointwise_{isa}_body({args}, {flag}, (uint32_t *)work, y);" if isa == "dsp"
                else f"eq_nhwc_pointwise_{isa}_body({args}, {flag}, y);")
    else:
        zp_len = ((c + 3) & ~3) if isa == "dsp" else ((c + 7) & ~7) + 8
        out.append(f"static const int8_t {p}zp[{zp_len}] __attribute__((aligned(4))) = "
                   f"{{{', '.join([str(fields['x_zp'])] * zp_len)}}};")
        body = (f"eq_nhwc_dw3x3_{isa}_body({args}, {p}zp, y);" if isa == "dsp"
                else f"eq_nhwc_dw3x3_{isa}_body({args}, {flag}, {p}zp, y);")
    out.append(f"static void __attribute__((noinline)) eq_spec_{p}(const int8_t *x, void *work, int8_t *y)\n"
               f"{{\n    (void)work;\n    {body}\n}}")
    fn = f"eq_nhwc_{kernel}_s8_{isa}"
    return LayerCall(out, [f"need = (int32_t){fn}_scratch_size(&{p}P);"],
                     f"eq_spec_{p}({p}x, (void *)(((uintptr_t)scratch + 3u) & ~(uintptr_t)3u), out); st = 0;",
                     to_nhwc(lay.output))


def conv_call(lay: Layer, p: str, kernel: str, isa: str, spec: bool = False) -> LayerCall:
    from edgeq.runtime_c import packing
    x, (w, bias, mult, shift) = lay.inputs[0], (list(lay.consts) + [None] * 4)[:4]
    w4 = w[:, :, None, :] if w.ndim == 3 else w
    nd = x.ndim - 2
    st, pads, dil = spatial(lay.node, nd)
    group, x_zp = int(lay.attr("group", 1)), int(lay.attr("x_zp", 0))
    if kernel in ("dw3x3", "depthwise"):
        pk = packing.pack_depthwise(w4, bias, mult, shift, x_zp, isa)
    else:
        pk = packing.pack_conv(w4, bias, mult, shift, x_zp, group, isa)
    (ih, iw), (oh, ow) = hw(x.shape), hw(lay.output.shape)
    fields = dict(batch=x.shape[0], in_c=x.shape[1], in_h=ih, in_w=iw, out_c=w.shape[0], out_h=oh, out_w=ow,
                  kernel_h=w4.shape[2], kernel_w=w4.shape[3], stride_h=st[0], stride_w=st[1], pad_top=pads[0],
                  pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3], dilation_h=dil[0], dilation_w=dil[1],
                  groups=group, x_zp=x_zp, y_zp=int(lay.attr("y_zp", 0)),
                  act_min=int(lay.attr("act_min", -128)), act_max=int(lay.attr("act_max", 127)))
    wtype = "int32_t" if pk.w.dtype == np.int32 else "int8_t"
    decls = [c_array(f"{p}x", to_nhwc(x), "int8_t"), c_array(f"{p}w", pk.w, wtype),
             c_array(f"{p}b", pk.bias, "int32_t"), _rq(f"{p}rq", pk.rq)]
    if spec and isa in ("dsp", "mve") and kernel in ("pointwise", "dw3x3"):
        return spec_call(lay, p, kernel, isa, pk, fields, decls)
    fn = f"eq_nhwc_{kernel}_s8_{isa}"
    return LayerCall(decls, [_struct("eq_conv2d_params", fields), f"need = (int32_t){fn}_scratch_size(&p);"],
                     f"st = {fn}(&p, {p}x, (const int8_t *){p}w, {p}b, {p}rq, scratch, out);", to_nhwc(lay.output))


def fc_call(lay: Layer, p: str, isa: str) -> LayerCall:
    from edgeq.runtime_c import packing
    x = lay.inputs[0].reshape(lay.inputs[0].shape[0], -1)
    w, bias, mult, shift = (list(lay.consts) + [None] * 4)[:4]
    x_zp = int(lay.attr("x_zp", 0))
    pk = packing.pack_fc(w, bias, mult, shift, x_zp, isa)
    fields = dict(batch=x.shape[0], in_features=x.shape[1], out_features=w.shape[0], x_zp=x_zp,
                  y_zp=int(lay.attr("y_zp", 0)), act_min=int(lay.attr("act_min", -128)),
                  act_max=int(lay.attr("act_max", 127)))
    fn = f"eq_nhwc_fc_s8_{isa}"
    decls = [c_array(f"{p}x", x, "int8_t"), c_array(f"{p}w", pk.w, "int8_t"), c_array(f"{p}b", pk.bias, "int32_t"),
             _rq(f"{p}rq", pk.rq)]
    return LayerCall(decls, [_struct("eq_fc_params", fields), f"need = (int32_t){fn}_scratch_size(&p);"],
                     f"st = {fn}(&p, {p}x, {p}w, {p}b, {p}rq, scratch, out);", lay.output)


def add_call(lay: Layer, p: str, isa: str) -> LayerCall:
    from edgeq.runtime_c import packing
    a, b = lay.inputs
    at = {k: int(v) for k, v in lay.node.attrs.items() if isinstance(v, (int, np.integer))}
    ta, tb, _ = packing.pack_add(at)
    rq = packing.pack_add_rq(at, isa)
    fields = dict(size=a.size, y_zp=at["y_zp"], act_min=at.get("act_min", -128), act_max=at.get("act_max", 127))
    fn = f"eq_nhwc_add_s8_{isa}"
    decls = [c_array(f"{p}a", to_nhwc(a), "int8_t"), c_array(f"{p}c", to_nhwc(b), "int8_t"),
             c_array(f"{p}ta", ta, "int32_t"), c_array(f"{p}tb", tb, "int32_t"), _rq(f"{p}rq", rq)]
    return LayerCall(decls, [_struct("eq_nhwc_add_params", fields)],
                     f"st = {fn}(&p, {p}a, {p}c, {p}ta, {p}tb, {p}rq, out);", to_nhwc(lay.output))


def pool_call(lay: Layer, p: str, kernel: str, isa: str) -> LayerCall:
    x = lay.inputs[0]
    kern = [int(k) for k in lay.attr("kernel")]
    kh, kw = (1, kern[0]) if len(kern) == 1 else kern
    st, pads, dil = spatial(lay.node, x.ndim - 2)
    (ih, iw), (oh, ow) = hw(x.shape), hw(lay.output.shape)
    fields = dict(batch=x.shape[0], channels=x.shape[1], in_h=ih, in_w=iw, out_h=oh, out_w=ow, kernel_h=kh,
                  kernel_w=kw, stride_h=st[0], stride_w=st[1], pad_top=pads[0], pad_left=pads[1],
                  pad_bottom=pads[2], pad_right=pads[3], dilation_h=dil[0], dilation_w=dil[1],
                  count_include_pad=int(lay.attr("count_include_pad", 0)), x_zp=int(lay.attr("x_zp", 0)),
                  act_min=int(lay.attr("act_min", -128)), act_max=int(lay.attr("act_max", 127)))
    fn = f"eq_nhwc_{kernel}_s8_{isa}"
    decls = [c_array(f"{p}x", to_nhwc(x), "int8_t")]
    setup = [_struct("eq_pool_params", fields), f"need = (int32_t){fn}_scratch_size(&p);"]
    if kernel == "avgpool":
        decls += [c_array(f"{p}r", np.array(lay.attr("recip")), "int32_t"),
                  c_array(f"{p}s", np.array(lay.attr("rshift")), "int32_t")]
        call = f"st = {fn}(&p, {p}x, {p}r, {p}s, scratch, out);"
    else:
        call = f"st = {fn}(&p, {p}x, out);"
    return LayerCall(decls, setup, call, to_nhwc(lay.output))


def softmax_call(lay: Layer, p: str) -> LayerCall:
    x = lay.inputs[0]
    axis = int(lay.attr("axis", -1)) % x.ndim
    if axis != x.ndim - 1:
        return LayerCall.unsupported("softmax over an inner axis")
    fields = dict(outer=x.size // x.shape[-1], depth=x.shape[-1], inner=1, input_mult=int(lay.attr("input_mult")),
                  input_left_shift=int(lay.attr("input_left_shift")), diff_min=int(lay.attr("diff_min")))
    return LayerCall([c_array(f"{p}x", x, "int8_t")], [_struct("eq_softmax_params", fields)],
                     f"st = eq_softmax_s8(&p, {p}x, out);", lay.output)


def layer_call(lay: Layer, prefix: str, isa: str, defined: set[str], spec: bool = False) -> LayerCall:
    kernel = choose(lay)
    if f"eq_nhwc_{kernel}_s8_{isa}" not in defined:
        isa = "c"  # this op has no variant for the CPU's ISA: the portable kernel (and packing)
    if kernel is None:
        return LayerCall.unsupported(f"no NHWC kernel for {lay.kind}")
    if kernel == "none":
        return LayerCall.nothing()
    if kernel == "softmax":
        return softmax_call(lay, prefix)
    if kernel == "fc":
        return fc_call(lay, prefix, isa)
    if kernel == "add":
        return add_call(lay, prefix, isa)
    if kernel in ("avgpool", "maxpool"):
        return pool_call(lay, prefix, kernel, isa)
    return conv_call(lay, prefix, kernel, isa, spec)


SPEC_HEADERS = ['#include "eq_nhwc_pointwise_dsp_body.h"', '#include "eq_nhwc_dw3x3_dsp_body.h"',
                '#include "eq_nhwc_pointwise_mve_body.h"', '#include "eq_nhwc_dw3x3_mve_body.h"']


def backend(cpu: str, cache: Path, isa: str | None = None, spec: bool = False):
    """(Backend, layer -> LayerCall, runtime archive) for the harness; spec: the pointwise
    and depthwise 3x3 layers through the shape-specialised bodies."""
    from edgeq import runtime_c
    from edgeq.runtime_c.packing import isa_for_cpu
    from edgeq.targets.mcu import load_boards, runtime_library
    isa = isa or isa_for_cpu(cpu)
    lib = runtime_library(load_boards()[cpu]["cpu_flags"])
    b = Backend(f"edgeq NHWC ({isa})", ['#include "eq_kernels_nhwc.h"'] + (SPEC_HEADERS if spec else []),
                "int32_t need = 0;", "need", libraries=[lib], include_dirs=[runtime_c.include_dir()])
    defined = library_functions(lib)
    return b, (lambda lay, prefix: layer_call(lay, prefix, isa, defined, spec)), lib
