"""ConvTranspose -> (Pad, Gather per spatial axis) + Conv: no new op.

A transposed convolution with stride s equals a stride-1 convolution, with the kernel
flipped and its in/out channels swapped, over the input with s - 1 zeros inserted between
neighbours and d (k - 1) - pad zeros around it (d: dilation, pad: the ConvTranspose's pads,
plus output_padding at the end). The zeros between neighbours come from one zero appended
to each spatial axis (a constant Pad) that a Gather picks wherever a gap is; the border is
the Conv's own zero padding where it is positive, and a crop (the Gather starts later) where
the ConvTranspose's pads exceed d (k - 1). Quantized, a real 0 is the zero point exactly,
so the integer graph is the same function. Cost: the Conv runs over the upsampled map
(s^2 more taps than a direct transposed kernel would read, most of them zeros).
"""
from __future__ import annotations

import numpy as np

from edgeq.importer.converters import _emit_spatial, _fail, _lift_1d, _lift_pads, _spatial_attrs
from edgeq.importer.select import gather_axes, is_identity
from edgeq.ops import implements


def _pads(node, attrs, spatial, kernel, strides, dil, out_pad) -> list[int]:
    """(begins..., ends...) of the ConvTranspose, from pads, or from output_shape / SAME
    (ONNX's total_padding rule)."""
    r = len(spatial)
    auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    out_shape = [int(v) for v in attrs.get("output_shape", [])]
    if not out_shape and auto in ("NOTSET", "VALID"):
        pads = [int(p) for p in attrs.get("pads", [0] * 2 * r)] if auto == "NOTSET" else [0] * 2 * r
        return pads
    if auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER"):
        _fail(node, f"unknown auto_pad {auto!r}")
    want = out_shape[-r:] if out_shape else [spatial[i] * strides[i] for i in range(r)]
    begins, ends = [], []
    for i in range(r):
        total = strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1 - want[i]
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins + ends


@implements("import", "ConvTranspose", emits=("Pad", "Gather", "Conv", "Reshape", "Identity"))
def conv_transpose(m, node, ins, attrs):
    W = np.asarray(m.need_const(ins[1], "the weight", node), np.float32)
    x, lifted = _lift_1d(m, node, ins[0])
    if lifted:
        W = W[:, :, None, :]
    if W.ndim != 4:
        _fail(node, f"weight rank {W.ndim} is not supported (only 1-D and 2-D transposed convolution)")
    shape = m.shape(x)
    g = int(attrs.get("group", 1))
    ci, co = shape[1], W.shape[1] * g
    if W.shape[0] != ci or ci % g:
        _fail(node, f"weight {tuple(W.shape)} with group={g} does not fit {ci} input channels")
    kernel = list(W.shape[2:])
    strides = _spatial_attrs(node, attrs, lifted, "strides", 1)
    dil = _spatial_attrs(node, attrs, lifted, "dilations", 1)
    out_pad = _spatial_attrs(node, attrs, lifted, "output_padding", 0)
    a = _lift_pads(attrs, lifted)
    if lifted and "output_shape" in a:
        a = {**a, "output_shape": [1] + [int(v) for v in a["output_shape"]]}
    pads = _pads(node, a, shape[2:], kernel, strides, dil, out_pad)
    if any(o >= max(s, d) for o, s, d in zip(out_pad, strides, dil)):
        _fail(node, f"output_padding {out_pad} must be smaller than the stride or the dilation")
    B = m.value(ins[2]) if len(ins) > 2 and ins[2] else None
    if len(ins) > 2 and ins[2] and B is None:
        m.need_const(ins[2], "the bias", node)
    B = np.zeros(co, np.float32) if B is None else np.asarray(B, np.float32).reshape(-1)
    if B.size != co:
        _fail(node, f"bias has {B.size} values for {co} output channels")

    picks, conv_pads, need_zero = {}, [0] * 4, []
    for i in range(2):
        n, s, span = shape[2 + i], strides[i], dil[i] * (kernel[i] - 1)
        before, after = span - pads[i], span - pads[i + 2] + out_pad[i]
        conv_pads[i], conv_pads[i + 2] = max(before, 0), max(after, 0)
        last = (n - 1) * s + min(after, 0)  # positions in the zero-inserted input, cropped
        js = np.arange(max(-before, 0), last + 1)
        if js.size == 0:
            _fail(node, f"pads {pads} leave no output along spatial axis {i}")
        on_input = js % s == 0
        picks[2 + i] = np.where(on_input, js // s, n).tolist()  # n: the appended zero
        if not on_input.all():
            need_zero.append(2 + i)
    src = m.ref(x)
    if need_zero:
        extra = [0] * 8
        for ax in need_zero:
            extra[4 + ax] = 1
        src = m.emit("Pad", [src], m.temp(f"{node.output[0]}/zero"), {"pads": extra, "value": 0.0},
                     node.name + "/zero")
    up = src if is_identity(m, src, picks) else \
        gather_axes(m, node, src, picks, m.temp(f"{node.output[0]}/upsampled"), f"{node.name}/upsample")
    # Conv weight [Co, Ci/g, kH, kW]: per group, in/out swapped, the kernel flipped.
    k = W.shape[2:]
    Wc = W.reshape(g, ci // g, co // g, *k).transpose(0, 2, 1, 3, 4).reshape(co, ci // g, *k)[:, :, ::-1, ::-1]
    conv_attrs = {"strides": [1, 1], "pads": conv_pads, "dilations": dil, "group": g}
    _emit_spatial(m, node, "Conv", [up, m.add_const(f"{node.name}/W", np.ascontiguousarray(Wc)),
                                    m.add_const(f"{node.name}/B", B)], conv_attrs, lifted)
