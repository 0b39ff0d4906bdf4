"""Target `reference`: the quantized graph itself, run by the Python integer reference.

Nothing is built; `run` interprets model.q.onnx with edgeq.intref, the golden semantics
every other target is checked against, a chunk of the batch at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.graphio.onnx_io import load_graph
from edgeq.options import BuildOptions
from edgeq.reference.interpreter import run_reference_streamed


class ReferenceTarget:
    name = "reference"
    stages = ("reference",)  # the per-op stages a build needs (edgeq ops)
    description = "quantized graph run by the Python integer reference (the golden semantics)"

    def build(self, qgraph, out_dir: Path, report: dict, options: BuildOptions | dict | None = None) -> None:
        report.setdefault("runner", "python integer reference")

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        qgraph = load_graph(Path(out_dir) / "model.q.onnx")
        return run_reference_streamed(qgraph, feeds)  # bounded memory, a progress bar

    def profile(self, out_dir: Path, device: str = "host") -> dict:
        raise EdgeqError("the reference target has no device to profile",
                         "compile for host or a cortex-m target and profile that build")

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        raise EdgeqError("the reference target produces no firmware",
                         "compile with --target cortex-m7 (or another cortex-m target) first")


TARGETS = [ReferenceTarget()]
