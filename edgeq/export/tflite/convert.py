"""The walk from an `ai.edgeq` graph to a TFLite model: tensors, layouts, dispatch.

One `Exporter` per export. Each edgeq activation may exist in the TFLite model in more
than one layout (e.g. NHWC for a conv and NCHW-ordered bytes for a flattening reshape);
`get(name, perm)` returns the TFLite tensor for that layout, inserting a TRANSPOSE (or a
RESHAPE when the move does not change the byte order) the first time it is asked for.
Per-op converters live in the ops_*.py modules and register with
`@implements("tflite", op, builtins=(...))` (the TFLite operators they may write).
"""
from __future__ import annotations

import json
import numpy as np

from edgeq.errors import EdgeqError
from edgeq.export.tflite import layout as L
from edgeq.export.tflite.builder import BuiltinOperator as B, ModelBuilder, TQuant
from edgeq.ir import Graph, Node
from edgeq.ops import lookup

LAYOUT_OPS = ("QTranspose", "QReshape")
METADATA_KEY = "edgeq_io"


# The fix for a node whose multipliers differ from what TFLite derives from its float32
# scales: only a graph quantized elsewhere (or edited by hand) can have them.
REQUANTIZE_FIX = ("quantize the float model with edgeq (its scales are float32 and its "
                  "multipliers are the ones TFLite derives from them)")


def refuse(node: Node, reason: str, fix: str = "") -> EdgeqError:
    return EdgeqError(f"cannot export node {node.name!r} ({node.op}) to TFLite: {reason}",
                      fix or "use a C target (host, cortex-m*) for this model, or change the "
                             "model so the op is not needed")


class Exporter:
    def __init__(self, g: Graph, float_io: bool = False, **options):
        self.g = g
        self.float_io = float_io
        self.options = options
        self.mb = ModelBuilder(f"edgeq export of {g.name}")
        self.layout: dict[str, tuple[int, ...]] = {}
        self.tid: dict[tuple[str, tuple[int, ...]], int] = {}
        # name -> a TFLite tensor with the activation's bytes (edgeq order) but another
        # shape, e.g. a QGemm result kept as [N, 1, 1, Co] for the next 1x1 conv
        self.views: dict[str, int] = {}
        self.consumers = g.consumer_map()

    # ---- tensors ----------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(s) for s in self.g.tensors[name].shape)

    def quant(self, name: str) -> TQuant:
        q = self.g.tensors[name].q
        if q is None:
            raise EdgeqError(f"tensor {name!r} has no quantization parameters",
                             "export a quantized graph (edgeq.quantization.quantize.quantize)")
        return TQuant([float(np.float32(s)) for s in np.ravel(q.scale)],
                      [int(z) for z in np.ravel(q.zero_point)], 0)

    def new_act(self, name: str, perm=None, suffix: str = "") -> int:
        """Create the TFLite tensor of activation `name` in layout `perm` (default: the
        name's preferred layout, set here if unset)."""
        shape = self.shape(name)
        if perm is None:
            perm = self.layout.setdefault(name, L.default_layout(len(shape)))
        perm = tuple(perm)
        idx = self.mb.tensor(name + suffix, L.apply(shape, perm), "int8", self.quant(name))
        if not suffix:
            self.tid[(name, perm)] = idx
        return idx

    def alias(self, name: str, perm, idx: int) -> None:
        self.layout.setdefault(name, tuple(perm))
        self.tid[(name, tuple(perm))] = idx

    def get(self, name: str, perm=None) -> int:
        """TFLite tensor holding activation `name` in layout `perm` (default: preferred)."""
        if self.g.const(name) is not None:
            raise AssertionError(f"get() is for activations; {name} is a constant")
        perm = tuple(self.layout[name] if perm is None else perm)
        if (name, perm) in self.tid:
            return self.tid[(name, perm)]
        found = [(p, i) for (n, p), i in self.tid.items() if n == name]
        shape = self.shape(name)
        if not found and name in self.views and L.is_memory_noop(shape, perm):
            dst = self.mb.tensor(name, L.apply(shape, perm), "int8", self.quant(name))
            self.reshape_op(self.views[name], dst, L.apply(shape, perm))
            self.tid[(name, perm)] = dst
            return dst
        if not found:
            raise EdgeqError(f"tensor {name!r} is read before any exported node produced it",
                             "export a topologically sorted graph (Graph.toposort)")
        have, src = found[0]
        dst = self.mb.tensor(f"{name}_{''.join(map(str, perm))}", L.apply(shape, perm), "int8",
                             self.quant(name))
        r = L.compose(L.inverse(have), perm)  # tflite_dst = tflite_src.transpose(r)
        if L.is_memory_noop(L.apply(shape, have), r):
            self.reshape_op(src, dst, L.apply(shape, perm))
        else:
            self.transpose_op(src, dst, r)
        self.tid[(name, perm)] = dst
        return dst

    def nchw_bytes(self, name: str) -> int:
        """A TFLite tensor of `name` whose bytes are in edgeq's (NCHW, row-major) order."""
        shape = self.shape(name)
        for (n, p), i in self.tid.items():
            if n == name and L.is_memory_noop(shape, p):
                return i
        if name in self.views:
            return self.views[name]
        return self.get(name, L.identity(len(shape)))

    def const(self, name: str, data: np.ndarray, quant: TQuant | None = None) -> int:
        data = np.asarray(data)
        return self.mb.tensor(name, data.shape, data.dtype.name, quant, data)

    def i32(self, name: str, values) -> int:
        v = np.asarray(values, dtype=np.int32)
        return self.const(name, v)

    # ---- small op emitters shared by converters ---------------------------------------------
    def reshape_op(self, src: int, dst: int, shape) -> None:
        s = self.i32(self.mb.tensors[dst].name + "_shape", list(shape))
        self.mb.op(B.RESHAPE, [src, s], [dst])

    def transpose_op(self, src: int, dst: int, perm) -> None:
        p = self.i32(self.mb.tensors[dst].name + "_perm", list(perm))
        self.mb.op(B.TRANSPOSE, [src, p], [dst], "TransposeOptions")

    # ---- the walk ------------------------------------------------------------------------
    def run(self) -> bytes:
        io = {"inputs": [], "outputs": [], "float_io": self.float_io}
        for name in self.g.inputs:
            perm = self._input_layout(name)
            self.layout[name] = perm
            io["inputs"].append(self._edge_in(name, perm))
        for node in self.g.nodes:
            lookup("tflite", node.op, node.name).fn(self, node)
        for name in self.g.outputs:
            io["outputs"].append(self._edge_out(name))
        self.mb.add_metadata(METADATA_KEY, json.dumps(io).encode())
        return self.mb.serialize()

    def _input_layout(self, name: str) -> tuple[int, ...]:
        rank = len(self.shape(name))
        users = self.consumers.get(name, [])
        if users and all(u.op in LAYOUT_OPS for u in users):
            return L.identity(rank)  # keep the model's own input layout (e.g. NHWC images)
        return L.default_layout(rank)

    def _edge_in(self, name: str, perm) -> dict:
        idx = self.new_act(name, perm)
        entry = {"name": name, "shape": list(self.shape(name)), "perm": list(perm),
                 "scale": self.quant(name).scale[0], "zero_point": self.quant(name).zero_point[0]}
        if self.float_io:
            f = self.mb.tensor(name + "_float", L.apply(self.shape(name), perm), "float32")
            self.mb.op(B.QUANTIZE, [f], [idx])
            self.mb.inputs.append(f)
        else:
            self.mb.inputs.append(idx)
        return entry

    def _edge_out(self, name: str) -> dict:
        made = any(n == name for n, _ in self.tid) or name in self.views
        if self.g.const(name) is not None or not made:
            raise EdgeqError(f"graph output {name!r} is not produced by an exported node")
        perm = self.layout[name]
        idx = self.get(name, perm)
        if self.float_io:
            f = self.mb.tensor(name + "_float", L.apply(self.shape(name), perm), "float32")
            self.mb.op(B.DEQUANTIZE, [idx], [f])
            idx = f
        if idx in self.mb.outputs:  # the same tensor listed twice: TFLite needs distinct slots
            raise EdgeqError(f"graph output {name!r} is listed twice", "list each output once")
        self.mb.outputs.append(idx)
        return {"name": name, "shape": list(self.shape(name)), "perm": list(perm),
                "scale": self.quant(name).scale[0], "zero_point": self.quant(name).zero_point[0]}
