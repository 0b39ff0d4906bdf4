"""Make the quantized graph's multipliers the ones a TFLite runtime will derive.

A .tflite file stores scales, not multipliers: LiteRT and TFLite Micro recompute every
(multiplier, shift) at load time from the float32 scales in the file, in double precision
(e.g. CONV_2D: double(s_in) * double(s_w[c]) / double(s_out), then QuantizeMultiplier).
edgeq's quantizer derives its multipliers from float64 scales, so a multiplier can differ
from TFLite's by one unit in its last (31st) bit, which flips an output LSB now and then.

`align_for_tflite(qgraph)` returns a copy whose multipliers are exactly those TFLite
derives from the float32-rounded scales (and the scales themselves rounded to float32),
plus the list of nodes that changed. The exporter writes that copy; its integer reference
is what the exported model reproduces bit for bit. When the quantizer itself works with
float32 scales and this formula, the copy equals the input (no changes).
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import quantize_multiplier
from edgeq.intref.softmax import softmax_params
from edgeq.ir import Graph, QParams

LEFT_SHIFT = 20  # TFLite ADD's int8 headroom shift


def f32(x) -> float:
    """The value a float32 field in the flatbuffer will hold, as a Python float."""
    return float(np.float32(x))


def f32_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def scale_of(g: Graph, name: str) -> float:
    return f32(np.ravel(g.tensors[name].q.scale)[0])


def conv_multipliers(s_in: float, w_scales, s_out: float, channels: int):
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: per channel
    double(s_in) * double(s_w[c]) / double(s_out) (per-tensor weights broadcast)."""
    ws = np.broadcast_to(f32_array(w_scales).reshape(-1), (channels,))
    pairs = [quantize_multiplier(s_in * float(w) / s_out) for w in ws]
    return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))


def add_multipliers(sa: float, sb: float, sy: float) -> dict:
    """ADD int8: t = 2 max(s_a, s_b); inputs s/t, output t / (2^20 s_y) (exact float32
    products: doubling and 2^20 only move the exponent)."""
    t = 2.0 * max(sa, sb)
    am, ash = quantize_multiplier(sa / t)
    bm, bsh = quantize_multiplier(sb / t)
    ym, ysh = quantize_multiplier(t / ((1 << LEFT_SHIFT) * sy))
    return {"a_mult": am, "a_shift": ash, "b_mult": bm, "b_shift": bsh,
            "y_mult": ym, "y_shift": ysh, "left_shift": LEFT_SHIFT}


def mul_multiplier(sa: float, sb: float, sy: float) -> tuple[int, int]:
    return quantize_multiplier(sa * sb / sy)


def align_for_tflite(qgraph: Graph) -> tuple[Graph, list[str]]:
    g = qgraph.copy()
    changed: list[str] = []
    for t in g.tensors.values():  # every scale becomes the float32 the file will hold
        if t.q is not None:
            t.q = QParams(f32_array(t.q.scale).reshape(np.shape(t.q.scale)), t.q.zero_point,
                          t.q.bits, t.q.axis)
    for node in g.nodes:
        if _align_node(g, node):
            changed.append(node.name)
    return g, changed


def _set_const(g: Graph, name: str, values: np.ndarray) -> bool:
    old = g.tensors[name].data
    new = np.asarray(values, dtype=old.dtype).reshape(old.shape)
    if np.array_equal(old, new):
        return False
    g.tensors[name].data = new
    return True


def _set_attrs(node, values: dict) -> bool:
    diff = any(int(node.attrs.get(k, v)) != int(v) for k, v in values.items())
    node.attrs.update({k: int(v) for k, v in values.items()})
    return diff


def _align_node(g: Graph, node) -> bool:
    op = node.op
    if op in ("QConv", "QGemm"):
        x, w, _b, mult, shift = node.inputs[:5]
        co = g.tensors[w].shape[0]
        m, s = conv_multipliers(scale_of(g, x), g.tensors[w].q.scale, scale_of(g, node.outputs[0]), co)
        return _set_const(g, mult, m) | _set_const(g, shift, s)
    if op == "QAdd":
        a, b = node.inputs[:2]
        return _set_attrs(node, add_multipliers(scale_of(g, a), scale_of(g, b), scale_of(g, node.outputs[0])))
    if op == "QMul":
        a, b = node.inputs[:2]
        m, s = mul_multiplier(scale_of(g, a), scale_of(g, b), scale_of(g, node.outputs[0]))
        return _set_attrs(node, {"y_mult": m, "y_shift": s})
    if op == "QRequant":
        m, s = quantize_multiplier(scale_of(g, node.inputs[0]) / scale_of(g, node.outputs[0]))
        return _set_attrs(node, {"mult": m, "shift": s})
    if op == "QSoftmax":
        beta = f32(node.attr("beta", 1.0))
        return _set_attrs(node, softmax_params(scale_of(g, node.inputs[0]), beta))
    return False
