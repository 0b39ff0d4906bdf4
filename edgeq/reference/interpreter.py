"""Run a quantized graph on the integer reference kernels: the golden model.

    feeds = quantize_inputs(qgraph, {"x": float_batch})     # float -> int8 at the edge
    outs = run_reference(qgraph, feeds)                      # int8 in, int8 out, no float
    real = dequantize_outputs(qgraph, outs)                  # int8 -> float32 at the edge

Between the edges every value is an integer array and every node goes through
`edgeq.intref.run_node` (the kernels in edgeq/intref/<op>.py). Feeds carry a batch axis
of any size N; kernels are batch-agnostic. Tensors are dropped as soon as their last
reader has run.

The kernels widen to int64 and keep a few arrays of each layer's size alive, so one
224x224 sample of MobileNetV2 takes about 88 MB (benchmarks/reference_memory.py): a whole
batch of them at once would not fit a machine. `run_reference_streamed` (what `edgeq run` and `--check` use) runs the
batch in chunks of at most REFERENCE_CHUNK_BYTES of working memory, with a progress bar;
samples are independent, so its results are those of one whole-batch run.
"""
from __future__ import annotations

import sys

import numpy as np

from edgeq.ir import Graph
from edgeq.progress import progress_bar
from edgeq.reference import run_node

REFERENCE_CHUNK_BYTES = 256 << 20  # working memory of one chunk of run_reference_streamed
# Per element of the largest layer, bytes the reference holds while running it: the int64
# copy of each input (8, and 8 more for a padded or reshaped copy) and, per output element,
# the int64 accumulator and the requantization's int64 intermediates (tracemalloc measures
# ~60 for a conv layer; tests/test_reference_streaming.py checks the bound).
INPUT_BYTES, OUTPUT_BYTES = 16, 80


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


def sample_bytes(qgraph: Graph) -> int:
    """An upper estimate of one sample's working memory in the reference: every int8
    activation alive at once, plus the widest layer's int64 temporaries."""
    acts = [t for t in qgraph.tensors.values() if not t.is_const]
    per_node = max((INPUT_BYTES * sum(qgraph.tensors[i].size for i in n.inputs
                                      if i and qgraph.const(i) is None)
                    + OUTPUT_BYTES * sum(qgraph.tensors[o].size for o in n.outputs)
                    for n in qgraph.nodes), default=0)
    return sum(t.size for t in acts) + per_node


def run_reference_streamed(qgraph: Graph, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
                           chunk_bytes: int | None = None, progress: bool | None = None
                           ) -> dict[str, np.ndarray]:
    """run_reference over the batch in chunks whose working memory stays below
    `chunk_bytes` (default REFERENCE_CHUNK_BYTES; at least one sample per chunk). `progress`:
    a bar on stderr (None: when stderr is a terminal and there is more than one chunk)."""
    n = len(next(iter(feeds.values()))) if feeds else 0
    budget = REFERENCE_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = max(1, budget // max(sample_bytes(qgraph), 1))
    if n <= step:
        return run_reference(qgraph, feeds, outputs)
    show = sys.stderr.isatty() if progress is None else progress
    result: dict[str, np.ndarray] = {}
    with progress_bar("integer reference", total=n, show=show) as advance:
        for start in range(0, n, step):
            part = run_reference(qgraph, {k: v[start:start + step] for k, v in feeds.items()}, outputs)
            for name, y in part.items():
                if name not in result:  # shapes and dtypes from the first chunk
                    result[name] = np.empty((n,) + y.shape[1:], y.dtype)
                result[name][start:start + len(y)] = y
            advance(min(step, n - start))
    return result


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
