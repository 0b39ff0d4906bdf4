"""QLut and QPrelu -> CAST (int8 -> int32), ADD (an int32 offset), GATHER (an int8 table).

edgeq's unary non-linearities are 256-entry tables computed from the float function
(round half to even); TFLite's LOGISTIC / TANH / HARD_SWISH / LEAKY_RELU / GELU int8
kernels compute their own fixed-point approximations, and TFLite's PRELU quantizes the
slope to int8 and rescales once where edgeq applies the exact slope per channel, so none
of those builtins reproduces edgeq's bytes. A table lookup does, in any runtime:
  index = int32(x) + offset,  y = table[index]
QLut: offset 128, table = the node's 256 entries. QPrelu: a per-channel table, C x 256
entries computed by running edgeq's own QPrelu kernel on every (channel, x) pair, and an
offset of c * 256 + 128 broadcast along the channel axis. The GATHER output carries the
node's output quantization. Cost: three small CPU ops (Vela keeps CAST and GATHER on the
CPU and reports them as fallbacks). `export_tflite(..., lut_as="refuse")` refuses
instead, naming the node.
"""
from __future__ import annotations

import numpy as np

from edgeq.intref import run_node
from edgeq.tflite_export import layout as L
from edgeq.tflite_export.builder import BuiltinOperator as B
from edgeq.tflite_export.convert import converts, refuse

REASONS = {
    "QLut": "edgeq's lookup-table semantics for {fn} differ from TFLite's fixed-point int8 "
            "kernels (LOGISTIC/TANH/HARD_SWISH/...), and lut_as='refuse' forbids the exact "
            "GATHER form",
    "QPrelu": "TFLite's PRELU quantizes the slope to int8 and rescales once, and "
              "lut_as='refuse' forbids the exact GATHER form",
}


def _gather(ex, node, table: np.ndarray, offsets: np.ndarray, channel_axis: int | None):
    x, y = node.inputs[0], node.outputs[0]
    rank = len(ex.shape(y))
    perm = ex.layout.setdefault(y, ex.layout.get(x, L.default_layout(rank)))
    shape = L.apply(ex.shape(y), perm)
    i32 = ex.mb.tensor(f"{y}_as_int32", shape, "int32")
    ex.mb.op(B.CAST, [ex.get(x, perm)], [i32])
    off_shape = [1] * rank
    if channel_axis is not None:
        off_shape[L.map_axis(channel_axis, rank, perm)] = offsets.size
    off = ex.const(f"{y}_index_offset", offsets.astype(np.int32).reshape(off_shape))
    idx = ex.mb.tensor(f"{y}_index", shape, "int32")
    ex.mb.op(B.ADD, [i32, off], [idx], "AddOptions", FusedActivationFunction=0)
    t = ex.const(f"{node.name}_table", table.astype(np.int8).reshape(-1), ex.quant(y))
    ex.mb.op(B.GATHER, [t, idx], [ex.new_act(y, perm)], "GatherOptions", Axis=0, BatchDims=0)


@converts("QLut")
def convert_lut(ex, node):
    if ex.options.get("lut_as", "gather") == "refuse":
        raise refuse(node, REASONS["QLut"].format(fn=node.attr("fn", "this function")))
    table = np.asarray(ex.g.const(node.inputs[1])).reshape(-1)
    if table.size != 256:
        raise refuse(node, f"the table has {table.size} entries, not 256")
    _gather(ex, node, table, np.array([128]), None)


@converts("QPrelu")
def convert_prelu(ex, node):
    if ex.options.get("lut_as", "gather") == "refuse":
        raise refuse(node, REASONS["QPrelu"])
    shape = ex.shape(node.inputs[0])
    c = shape[1] if len(shape) >= 2 else 1
    # every (channel, x) pair through edgeq's own kernel: the table is the semantics
    xs = np.broadcast_to(np.arange(-128, 128, dtype=np.int8), (1, c, 256))
    params = [ex.g.const(n) for n in node.inputs[1:]]
    table = run_node(node, [np.ascontiguousarray(xs)] + params)  # [1, C, 256]
    offsets = np.arange(c) * 256 + 128
    _gather(ex, node, table.reshape(c, 256), offsets, 1 if len(shape) >= 2 else None)
