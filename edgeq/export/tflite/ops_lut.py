"""QLut -> LOGISTIC / TANH / HARD_SWISH where TFLite's kernel gives the table's bytes,
else (and QPrelu always) CAST (int8 -> int32), ADD (an int32 offset), GATHER (an int8 table).

Builtins (TFLite's own arithmetic, on the NPU under Vela):
- HardSwish: the quantizer's table is TFLite's HARD_SWISH kernel tabulated
  (edgeq.quantize_rules.hardswish), so it is written as HARD_SWISH whenever the table
  equals that kernel's on these parameters.
- Sigmoid / Tanh with TFLite's fixed output parameters (1/256, -128 / 1/128, 0; the
  quantizer uses them): edgeq's table rounds the float function exactly; LiteRT's LOGISTIC
  / TANH round a float32 evaluation and TFLite Micro's a fixed-point one, both accurate to
  far better than 2^-12 LSB (the worst disagreement measured, tests/
  test_tflite_oracle_activations.py: 4.5e-6 LSB from a boundary). So the builtin is
  written only when every entry's unrounded value lies at least ROUNDING_MARGIN LSB from
  a rounding boundary: then any of them rounds it the same way. About 6% of input
  parameters have an entry that close (9 and 7 of the oracle test's 123); those get the
  GATHER form.

GATHER (exact in any runtime): index = int32(x) + offset, y = table[index].
QLut: offset 128, table = the node's 256 entries. QPrelu: a per-channel table, C x 256
entries computed by running edgeq's own QPrelu kernel on every (channel, x) pair, and an
offset of c * 256 + 128 broadcast along the channel axis (TFLite's PRELU quantizes the
slope to int8 with one scale and multiplies before rescaling, so it differs from edgeq's
exact per-channel slope by 1 LSB on ~4% of outputs: docs/semantics.md). The GATHER output
carries the node's output quantization. Cost: three small CPU ops (Vela keeps CAST and
GATHER on the CPU and reports them as fallbacks). `export_tflite(..., lut_as="refuse")`
refuses a node that needs the GATHER form instead, naming it.
"""
from __future__ import annotations

import numpy as np

from edgeq.export.tflite import layout as L
from edgeq.export.tflite.builder import BuiltinOperator as B
from edgeq.export.tflite.convert import refuse
from edgeq.ops import FLOAT_OPS, implements
from edgeq.quantization.rules.hardswish import hard_swish_table
from edgeq.quantization.rules.lut import FIXED_OUTPUT, lut_inputs
from edgeq.reference import run_node

ROUNDING_MARGIN = 2.0 ** -12  # LSB; see the module docstring
BUILTINS = {"Sigmoid": B.LOGISTIC, "Tanh": B.TANH, "HardSwish": B.HARD_SWISH}

REASONS = {
    "QLut": "no TFLite builtin computes edgeq's table for {fn} with these parameters, and "
            "lut_as='refuse' forbids the exact GATHER form",
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


def builtin_computes(fn: str, table: np.ndarray, qx, qy) -> bool:
    """True when TFLite's own kernel for `fn` gives exactly `table` on these parameters."""
    if fn == "HardSwish":
        want = hard_swish_table(qx, qy)
        return want is not None and np.array_equal(want, table)
    if fn not in FIXED_OUTPUT or (float(qy.scale), int(qy.zero_point)) != FIXED_OUTPUT[fn]:
        return False
    real = FLOAT_OPS[fn].float_fn(lut_inputs(qx), {}) / float(qy.scale) + int(qy.zero_point)
    if not np.array_equal(np.clip(np.round(real), -128, 127), table):
        return False
    # distance to the nearest rounding boundary between two int8 values (-127.5 .. 126.5)
    boundary = np.clip(np.floor(real) + 0.5, -127.5, 126.5)
    return bool(np.min(np.abs(real - boundary)) >= ROUNDING_MARGIN)


@implements("tflite", "QLut", builtins=("GATHER", "CAST", "ADD", "LOGISTIC", "TANH", "HARD_SWISH"))
def convert_lut(ex, node):
    table = np.asarray(ex.g.const(node.inputs[1])).reshape(-1)
    if table.size != 256:
        raise refuse(node, f"the table has {table.size} entries, not 256")
    x, y, fn = node.inputs[0], node.outputs[0], str(node.attr("fn", ""))
    if builtin_computes(fn, table, ex.g.tensors[x].q, ex.g.tensors[y].q):
        perm = ex.layout.setdefault(y, ex.layout.get(x, L.default_layout(len(ex.shape(y)))))
        ex.mb.op(BUILTINS[fn], [ex.get(x, perm)], [ex.new_act(y, perm)])
        return
    if ex.options.get("lut_as", "gather") == "refuse":
        raise refuse(node, REASONS["QLut"].format(fn=fn or "this function"))
    _gather(ex, node, table, np.array([128]), None)


@implements("tflite", "QPrelu", builtins=("GATHER", "CAST", "ADD"))
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
