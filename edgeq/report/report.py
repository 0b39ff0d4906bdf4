"""Per-layer facts and report.json: what a person reads after `edgeq compile`.

Everything here is derived from the quantized graph; targets add their measurements
(flash, SRAM, instructions) to the same dict.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeq.codegen.carray import s4_bytes
from edgeq.ir import Graph, Node
from edgeq.ops import holds, macs


def _bits(graph: Graph, name: str) -> int | None:
    t = graph.tensors.get(name)
    if t is None:
        return None
    if t.q is not None:
        return t.q.bits
    return 32 if t.dtype == "float32" else np.dtype(t.dtype).itemsize * 8


def layer_rows(graph: Graph) -> list[dict]:
    rows = []
    for n in graph.nodes:
        out = graph.tensors[n.outputs[0]]
        row = {
            "name": n.name,
            "op": n.op,
            "macs": macs(n, graph),
            "weight_bits": _bits(graph, n.inputs[1]) if holds("weighted", n) else None,
            "act_bits": _bits(graph, n.outputs[0]),
            "input_shape": list(graph.tensors[n.inputs[0]].shape) if n.inputs and n.inputs[0] in graph.tensors else None,
            "output_shape": list(out.shape),
        }
        if out.q is not None:
            row["output_scale"] = float(np.ravel(out.q.scale)[0])
            row["output_zero_point"] = int(np.ravel(out.q.zero_point)[0])
        rows.append(row)
    return rows


def base_report(qgraph: Graph, target: str) -> dict:
    layers = layer_rows(qgraph)
    consts = [t for t in qgraph.tensors.values() if t.is_const]
    return {
        "target": target,
        "macs": int(sum(r["macs"] for r in layers)),
        # weights_bytes: every constant the model carries (weights, biases, multipliers,
        # shifts, tables) as stored on the device.
        # (weights of <= 4 bits count packed, two per byte, as the C targets store them).
        "weights_bytes": int(sum(_stored_bytes(t) for t in consts)),
        "inputs": [_io_entry(qgraph, name) for name in qgraph.inputs],
        "outputs": [_io_entry(qgraph, name) for name in qgraph.outputs],
        "layers": layers,
    }


def _stored_bytes(t) -> int:
    return s4_bytes(t.shape) if t.q is not None and t.q.bits <= 4 else int(t.nbytes)


def _io_entry(graph: Graph, name: str) -> dict:
    t = graph.tensors[name]
    entry = {"name": name, "shape": list(t.shape), "dtype": t.dtype}
    if t.q is not None:
        entry.update(scale=float(np.ravel(t.q.scale)[0]), zero_point=int(np.ravel(t.q.zero_point)[0]))
    return entry


def write_report(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def read_report(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
