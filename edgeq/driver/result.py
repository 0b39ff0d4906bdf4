"""What a compile returns, and the test vectors firmware embeds: shared by the ONNX pipeline
and the .tflite one (pipeline_tflite.py), which must not import each other both ways."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.ir import Graph
from edgeq.reference.interpreter import quantize_inputs


@dataclass
class CompileResult:
    out_dir: Path | None
    float_graph: Graph | None  # None for a .tflite model (compiled as it is)
    qgraph: Graph
    report: dict


def test_vectors(qgraph: Graph, feeds: dict[str, np.ndarray] | None, count: int):
    """A few quantized inputs (from the calibration data, else seeded random int8) that
    firmware embeds to check itself against the integer reference."""
    if count <= 0:
        return None
    if feeds is not None:
        return quantize_inputs(qgraph, {k: v[:count] for k, v in feeds.items()})
    rng = np.random.default_rng(0)
    out = {}
    for name in qgraph.inputs:
        shape = (count,) + tuple(qgraph.tensors[name].shape[1:])
        out[name] = rng.integers(-128, 128, size=shape, dtype=np.int8)
    return out
