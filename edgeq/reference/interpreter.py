"""Run a quantized graph on the integer reference kernels: the golden model.

    feeds = quantize_inputs(qgraph, {"x": float_batch})     # float -> int8 at the edge
    outs = run_reference(qgraph, feeds)                      # int8 in, int8 out, no float
    real = dequantize_outputs(qgraph, outs)                  # int8 -> float32 at the edge

Between the edges every value is an integer array and every node goes through
`edgeq.intref.run_node` (the kernels in edgeq/intref/<op>.py). Feeds carry a batch axis
of any size N; kernels are batch-agnostic. Tensors are dropped as soon as their last
reader has run, so large batches of a deep model stay within memory.
"""
from __future__ import annotations

import numpy as np

from edgeq.reference import run_node
from edgeq.ir import Graph


def run_reference(qgraph: Graph, feeds: dict[str, np.ndarray],
                  outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """int8 feeds (name -> [N, ...]) -> the requested tensors (default: graph outputs)."""
    wanted = list(outputs) if outputs is not None else list(qgraph.outputs)
    missing = [n for n in qgraph.inputs if n not in feeds]
    if missing:
        raise ValueError(f"run_reference: no feed for graph inputs {missing}")
    env: dict[str, np.ndarray] = {}
    for name in qgraph.inputs:
        x = np.asarray(feeds[name])
        if x.dtype != np.int8:
            raise TypeError(f"run_reference: feed {name!r} is {x.dtype}, expected int8 "
                            "(quantize float inputs with quantize_inputs)")
        env[name] = x
    last_use = _last_uses(qgraph, set(wanted))
    for i, node in enumerate(qgraph.nodes):
        arrays = [_value(qgraph, env, name) for name in node.inputs]
        result = run_node(node, arrays)
        env[node.outputs[0]] = result
        for name in last_use.get(i, ()):
            env.pop(name, None)
    absent = [n for n in wanted if n not in env and qgraph.const(n) is None]
    if absent:
        raise KeyError(f"run_reference: tensors {absent} are not produced by the graph")
    return {n: env[n] if n in env else qgraph.const(n) for n in wanted}


def _value(qgraph: Graph, env: dict, name: str):
    if not name:
        return None
    if name in env:
        return env[name]
    data = qgraph.const(name)
    if data is None:
        raise KeyError(f"run_reference: tensor {name!r} is read before it is produced")
    return data


def _last_uses(qgraph: Graph, keep: set[str]) -> dict[int, list[str]]:
    """node index -> activation tensors whose last reader is that node (never `keep`)."""
    last: dict[str, int] = {}
    for i, node in enumerate(qgraph.nodes):
        for name in node.inputs:
            if name and qgraph.const(name) is None:
                last[name] = i
    out: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in keep:
            out.setdefault(i, []).append(name)
    return out


def quantize_inputs(qgraph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float feeds -> int8 with each graph input's parameters (round half to even, clamp)."""
    out = {}
    for name, x in feeds.items():
        t = qgraph.tensors.get(name)
        if t is None or t.q is None or name not in qgraph.inputs:
            raise KeyError(f"quantize_inputs: {name!r} is not a quantized graph input "
                           f"(inputs: {qgraph.inputs})")
        out[name] = t.q.quantize(np.asarray(x, dtype=np.float32)).astype(np.int8)
    return out


def dequantize_outputs(qgraph: Graph, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """int8 tensors -> float32 real values with their QParams (any tensor with QParams)."""
    res = {}
    for name, q in outputs.items():
        t = qgraph.tensors.get(name)
        if t is None or t.q is None:
            raise KeyError(f"dequantize_outputs: tensor {name!r} has no quantization parameters")
        res[name] = t.q.dequantize(np.asarray(q))
    return res
