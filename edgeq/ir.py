"""edgeq's graph IR: a small, explicit dataflow graph of numpy tensors.

Why our own IR and not onnx_ir directly (design.md names onnx_ir): every stage after
import attaches quantization parameters and integer arrays (multipliers, shifts, lookup
tables) to tensors and nodes, and passes rewrite weights in place many times. Plain
dataclasses over numpy make that direct and keep the integer reference free of any
serialization library. ONNX stays the format in and out of every stage
(`edgeq.onnx_io`), so Netron and onnx tools still open every intermediate graph.

Conventions
-----------
- Layout is ONNX's NCHW throughout (the TFLite exporter converts to NHWC).
- A tensor with `data` is a constant (weights, biases, integer parameters).
- `nodes` is kept in topological order; `Graph.toposort()` restores it after edits.
- A float graph uses ONNX op names with canonical attributes (see `edgeq.onnx_import`);
  a quantized graph uses the `ai.edgeq` ops documented in docs/semantics.md.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

QDOMAIN = "ai.edgeq"


@dataclass
class QParams:
    """Affine quantization: real = scale * (q - zero_point).

    `scale` is a float array of shape () for per-tensor or (C,) for per-channel along
    `axis`; `zero_point` has the same shape (int). Scales are compile-time metadata only:
    the integer graph never multiplies by them at run time.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    bits: int = 8
    axis: int | None = None

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.zero_point = np.asarray(self.zero_point, dtype=np.int64)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> int (round half to even like numpy/TFLite's converter, then clamp)."""
        s, z = self._broadcast(np.ndim(x))
        q = np.round(np.asarray(x, dtype=np.float64) / s) + z
        return np.clip(q, self.qmin(), self.qmax()).astype(np.int8 if self.bits <= 8 else np.int32)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self._broadcast(np.ndim(q))
        return ((np.asarray(q, dtype=np.int64) - z) * s).astype(np.float32)

    def _broadcast(self, ndim: int):
        if self.axis is None:
            return self.scale, self.zero_point
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def to_dict(self) -> dict:
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(),
                "bits": self.bits, "axis": self.axis}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, int8, int32, int64, ...
    data: np.ndarray | None = None
    q: QParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]  # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


class Graph:
    def __init__(self, name: str = "graph"):
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}  # free-form notes passes leave for reports
        self._names = itertools.count()

    # ---- construction -------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        self.tensors[t.name] = t
        return t

    def add_const(self, name: str, data: np.ndarray, q: QParams | None = None) -> str:
        name = self.unique_name(name)
        data = np.ascontiguousarray(data)
        self.tensors[name] = Tensor(name, tuple(data.shape), data.dtype.name, data, q)
        return name

    def unique_name(self, base: str) -> str:
        name = base
        while name in self.tensors:
            name = f"{base}_{next(self._names)}"
        return name

    def producer_map(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumer_map(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    users.setdefault(i, []).append(n)
        return users

    def const(self, name: str) -> np.ndarray | None:
        t = self.tensors.get(name) if name else None
        return None if t is None else t.data

    # ---- editing --------------------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Point every reader of tensor `old` (nodes and graph outputs) at `new`."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_node(self, node: Node) -> None:
        self.nodes.remove(node)

    def prune(self) -> None:
        """Drop nodes whose outputs nobody reads and tensors nobody references."""
        live = set(self.outputs)
        kept: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                kept.append(n)
                live.update(i for i in n.inputs if i)
        self.nodes = kept[::-1]
        live.update(self.inputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in live}

    def toposort(self) -> None:
        ready = set(self.inputs) | {k for k, t in self.tensors.items() if t.is_const}
        pending, ordered = list(self.nodes), []
        while pending:
            progressed = False
            for n in list(pending):
                if all((not i) or i in ready for i in n.inputs):
                    ordered.append(n)
                    ready.update(n.outputs)
                    pending.remove(n)
                    progressed = True
            if not progressed:
                names = ", ".join(n.name for n in pending[:5])
                raise ValueError(f"graph has a cycle or a dangling input near: {names}")
        self.nodes = ordered

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    # ---- queries ----------------------------------------------------------------------
    def node_by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]

    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.is_const)

    def is_quantized(self) -> bool:
        return any(n.domain == QDOMAIN for n in self.nodes)


def iter_consts(graph: Graph, names: Iterable[str]) -> list[np.ndarray | None]:
    return [graph.const(n) for n in names]
