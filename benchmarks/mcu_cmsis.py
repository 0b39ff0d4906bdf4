"""CMSIS-NN, the peer: built from ../shared/peers/cmsis-nn into a cache folder at benchmark
time (never linked into edgeq's firmware, never copied into this repository), and each
edgeq layer expressed as the CMSIS-NN call TFLite Micro would make for it.

TFLite Micro's dispatch (notes/toolchain.md): arm_convolve_wrapper_s8 (1x1 fast / 1xN /
generic), arm_depthwise_conv_wrapper_s8, arm_fully_connected_per_channel_s8 (the kernel
sums that its MVE build reads are computed before the measured call, as TFLM's Prepare
does), arm_elementwise_add_s8, arm_avgpool_s8, arm_max_pool_s8, arm_softmax_s8.
CMSIS-NN is channels-last: activations NHWC, conv weights [Co, kH, kW, Ci], depthwise
weights [1, kH, kW, Co]. An NHWC->NCHW transpose at the model's input, which edgeq's NCHW
firmware runs, does not exist in an NHWC pipeline; reshapes are aliases; both cost 0 here.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from mcu_harness import LayerCall, c_array, dims_nhwc
from mcu_layers import Layer, hw, spatial, to_nhwc

ROOT = Path(__file__).resolve().parents[1]
CMSIS = ROOT.parent / "shared" / "peers" / "cmsis-nn"
CFLAGS = ["-O2", "-std=c99"]  # TFLite Micro's makefiles build its kernels at -O2


def available() -> bool:
    return (CMSIS / "Include" / "arm_nnfunctions.h").is_file()


def commit() -> str:
    f = CMSIS / "COMMIT"
    return f.read_text().split()[0] if f.is_file() else "unknown"


def sources() -> list[Path]:
    return sorted(p for p in (CMSIS / "Source").glob("*/*.c")
                  if not p.stem.endswith(("_f16", "_f32", "_flt")))


def library(cpu_flags: list[str], cache: Path) -> Path:
    """CMSIS-NN compiled for one CPU into cache/cmsis-nn-<hash>.a (built once per source
    commit and flags)."""
    key = hashlib.sha256(" ".join([commit(), *cpu_flags, *CFLAGS]).encode()).hexdigest()[:16]
    lib = cache / f"cmsis-nn-{key}.a"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        srcs = [str(s) for s in sources()]
        for i in range(0, len(srcs), 16):
            subprocess.run(["arm-none-eabi-gcc", *cpu_flags, *CFLAGS, f"-I{CMSIS / 'Include'}", "-c",
                            *srcs[i:i + 16]], cwd=tmp, check=True, capture_output=True, text=True)
        subprocess.run(["arm-none-eabi-ar", "rcs", "lib.a", *sorted(Path(tmp).glob("*.o"))],
                       cwd=tmp, check=True, capture_output=True)
        os.replace(Path(tmp) / "lib.a", lib)
    return lib


HEADERS = ['#include "arm_nnfunctions.h"']


def _tile(h: int, w: int) -> str:
    return f"{{ .w = {w}, .h = {h} }}"


def _conv_like(lay: Layer, p: str) -> tuple[list[str], dict]:
    """Arrays and the common fields of a conv / depthwise layer."""
    x, (w, bias, mult, shift) = lay.inputs[0], (list(lay.consts) + [None] * 4)[:4]
    co = w.shape[0]
    if bias is None:
        bias = np.zeros(co, np.int32)
    nd = x.ndim - 2
    st, pads, dil = spatial(lay.node, nd)
    decls = [c_array(f"{p}x", to_nhwc(x), "int8_t"), c_array(f"{p}b", bias, "int32_t"),
             c_array(f"{p}m", mult, "int32_t"), c_array(f"{p}s", shift, "int32_t")]
    f = dict(st=st, pads=pads, dil=dil, co=co, ci=x.shape[1], ih_iw=hw(x.shape),
             oh_ow=hw(lay.output.shape), kh_kw=hw(w.shape), batch=x.shape[0],
             x_zp=int(lay.attr("x_zp", 0)), y_zp=int(lay.attr("y_zp", 0)),
             lo=int(lay.attr("act_min", -128)), hi=int(lay.attr("act_max", 127)))
    return decls, f


def conv(lay: Layer, p: str) -> LayerCall:
    decls, f = _conv_like(lay, p)
    w = lay.consts[0]
    w4 = w[:, :, None, :] if w.ndim == 3 else w
    group = int(lay.attr("group", 1))
    depthwise = group > 1 and group == f["ci"] and w.shape[1] == 1
    (ih, iw), (oh, ow), (kh, kw) = f["ih_iw"], f["oh_ow"], f["kh_kw"]
    st, pads, dil = f["st"], f["pads"], f["dil"]
    dims = (f"const cmsis_nn_dims in_d = {dims_nhwc(f['batch'], ih, iw, f['ci'])}, "
            f"b_d = {{1, 1, 1, {f['co']}}}, out_d = {dims_nhwc(f['batch'], oh, ow, f['co'])};")
    quant = f"cmsis_nn_per_channel_quant_params qp = {{(int32_t *){p}m, (int32_t *){p}s}};"
    common = (f".input_offset = {-f['x_zp']}, .output_offset = {f['y_zp']}, "
              f".stride = {_tile(*st)}, .padding = {_tile(pads[0], pads[1])}, "
              f".dilation = {_tile(*dil)}, .activation = {{ {f['lo']}, {f['hi']} }}")
    if depthwise:
        decls.append(c_array(f"{p}w", np.ascontiguousarray(w4.transpose(1, 2, 3, 0)), "int8_t"))
        setup = [dims, f"const cmsis_nn_dims f_d = {{1, {kh}, {kw}, {f['co']}}};", quant,
                 f"const cmsis_nn_dw_conv_params cp = {{{common}, .ch_mult = {f['co'] // f['ci']}}};",
                 "ctx.size = arm_depthwise_conv_wrapper_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);"]
        call = (f"st = arm_depthwise_conv_wrapper_s8(&ctx, &cp, &qp, &in_d, {p}x, &f_d, {p}w, &b_d, {p}b, "
                f"&out_d, out);")
    else:
        decls.append(c_array(f"{p}w", np.ascontiguousarray(w4.transpose(0, 2, 3, 1)), "int8_t"))
        setup = [dims, f"const cmsis_nn_dims f_d = {{{f['co']}, {kh}, {kw}, {w.shape[1]}}};", quant,
                 f"const cmsis_nn_conv_params cp = {{{common}}};",
                 "ctx.size = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);"]
        fn = "arm_convolve_wrapper_s8" if group == 1 else "arm_convolve_s8"
        upscale = "" if group == 1 else "NULL, "
        call = f"st = {fn}(&ctx, &cp, &qp, &in_d, {p}x, &f_d, {p}w, &b_d, {p}b, {upscale}&out_d, out);"
    return LayerCall(decls, setup, call, to_nhwc(lay.output))


def fc(lay: Layer, p: str) -> LayerCall:
    x = lay.inputs[0].reshape(lay.inputs[0].shape[0], -1)
    w, bias, mult, shift = (list(lay.consts) + [None] * 4)[:4]
    n, k, co = x.shape[0], x.shape[1], w.shape[0]
    if bias is None:
        bias = np.zeros(co, np.int32)
    x_zp, y_zp = int(lay.attr("x_zp", 0)), int(lay.attr("y_zp", 0))
    decls = [c_array(f"{p}x", x, "int8_t"), c_array(f"{p}w", w, "int8_t"), c_array(f"{p}b", bias, "int32_t"),
             c_array(f"{p}m", mult, "int32_t"), c_array(f"{p}s", shift, "int32_t")]
    setup = [f"const cmsis_nn_dims in_d = {{{n}, 1, 1, {k}}}, f_d = {{{k}, 1, 1, {co}}}, "
             f"b_d = {{1, 1, 1, {co}}}, out_d = {{{n}, 1, 1, {co}}};",
             f"cmsis_nn_per_channel_quant_params qp = {{(int32_t *){p}m, (int32_t *){p}s}};",
             f"const cmsis_nn_fc_params fp = {{ .input_offset = {-x_zp}, .filter_offset = 0, "
             f".output_offset = {y_zp}, .activation = {{ {int(lay.attr('act_min', -128))}, "
             f"{int(lay.attr('act_max', 127))} }} }};",
             "ctx.size = arm_fully_connected_s8_get_buffer_size(&f_d);",
             # TFLM's Prepare: the MVE kernel reads bias + input_offset * sum(w) per row
             f"if (ctx.size > 0) arm_vector_sum_s8((int32_t *)ctx.buf, {k}, {co}, {p}w, {-x_zp}, 0, {p}b);"]
    call = f"st = arm_fully_connected_per_channel_s8(&ctx, &fp, &qp, &in_d, {p}x, &f_d, {p}w, &b_d, {p}b, &out_d, out);"
    return LayerCall(decls, setup, call, lay.output)


def add(lay: Layer, p: str) -> LayerCall:
    a, b = lay.inputs
    if a.shape != b.shape:
        return LayerCall.unsupported("broadcasting add")
    at = {k: int(v) for k, v in lay.node.attrs.items() if isinstance(v, (int, np.integer))}
    decls = [c_array(f"{p}a", to_nhwc(a), "int8_t"), c_array(f"{p}c", to_nhwc(b), "int8_t")]
    call = (f"st = arm_elementwise_add_s8({p}a, {p}c, {-at['a_zp']}, {at['a_mult']}, {at['a_shift']}, "
            f"{-at['b_zp']}, {at['b_mult']}, {at['b_shift']}, {at.get('left_shift', 20)}, out, {at['y_zp']}, "
            f"{at['y_mult']}, {at['y_shift']}, {at.get('act_min', -128)}, {at.get('act_max', 127)}, {a.size});")
    return LayerCall(decls, [], call, to_nhwc(lay.output))


def pool(lay: Layer, p: str) -> LayerCall:
    x = lay.inputs[0]
    kern = [int(k) for k in lay.attr("kernel")]
    kh, kw = (1, kern[0]) if len(kern) == 1 else kern
    st, pads, dil = spatial(lay.node, x.ndim - 2)
    if max(dil) > 1 or (lay.op == "QAvgPool" and int(lay.attr("count_include_pad", 0)) and max(pads) > 0):
        return LayerCall.unsupported("dilated pooling / count_include_pad")
    (ih, iw), (oh, ow), c = hw(x.shape), hw(lay.output.shape), x.shape[1]
    setup = [f"const cmsis_nn_dims in_d = {dims_nhwc(x.shape[0], ih, iw, c)}, f_d = {{1, {kh}, {kw}, 1}}, "
             f"out_d = {dims_nhwc(x.shape[0], oh, ow, c)};",
             f"const cmsis_nn_pool_params pp = {{ .stride = {_tile(*st)}, .padding = {_tile(pads[0], pads[1])}, "
             f".activation = {{ {int(lay.attr('act_min', -128))}, {int(lay.attr('act_max', 127))} }} }};"]
    if lay.op == "QAvgPool":
        setup.append(f"ctx.size = arm_avgpool_s8_get_buffer_size({ow}, {c});")
        call = f"st = arm_avgpool_s8(&ctx, &pp, &in_d, {p}x, &f_d, &out_d, out);"
    else:
        call = f"st = arm_max_pool_s8(&ctx, &pp, &in_d, {p}x, &f_d, &out_d, out);"
    return LayerCall([c_array(f"{p}x", to_nhwc(x), "int8_t")], setup, call, to_nhwc(lay.output))


def softmax(lay: Layer, p: str) -> LayerCall:
    x = lay.inputs[0]
    axis = int(lay.attr("axis", -1)) % x.ndim
    if axis != x.ndim - 1 and int(np.prod(x.shape[axis + 1:])) != 1:
        return LayerCall.unsupported("softmax over an inner axis")
    depth = x.shape[axis]
    call = (f"arm_softmax_s8({p}x, {x.size // depth}, {depth}, {int(lay.attr('input_mult'))}, "
            f"{int(lay.attr('input_left_shift'))}, {int(lay.attr('diff_min'))}, out); st = 0;")
    return LayerCall([c_array(f"{p}x", x, "int8_t")], [], call, lay.output)


def layout_only(lay: Layer, p: str) -> LayerCall:
    """An input transpose NHWC -> NCHW or a reshape: nothing to run in an NHWC pipeline."""
    x = lay.inputs[0]
    if lay.op == "QTranspose" and not (x.ndim == 4 and list(lay.attr("perm", [])) == [0, 3, 1, 2]):
        return LayerCall.unsupported("a transpose other than NHWC->NCHW")
    return LayerCall.nothing()


CALLS = {"QConv": conv, "QGemm": fc, "QAdd": add, "QAvgPool": pool, "QMaxPool": pool, "QSoftmax": softmax,
         "QTranspose": layout_only, "QReshape": layout_only}


def layer_call(lay: Layer, prefix: str) -> LayerCall:
    fn = CALLS.get(lay.op)
    return fn(lay, prefix) if fn else LayerCall.unsupported(lay.op)
