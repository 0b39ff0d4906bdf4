"""Import an int8 .tflite model as it is: its ai.edgeq graph, no recalibration.

    from edgeq.tflite_import import import_tflite
    qgraph = import_tflite("model.tflite")      # the same graph edgeq.quantize would make

Every scale, zero point and per-channel parameter is the file's; every multiplier is the
one TFLite Micro derives from them when it prepares the model (each converter says which
formula), so `run_reference(qgraph, feeds)` and every edgeq lowering give TFLite Micro's
outputs bit for bit (tests/test_tflite_import.py). An operator edgeq cannot reproduce
exactly is refused with one line naming it.

Converters register with `@implements("tflite-import", BUILTIN, emits=(...))`, one module
per op family; builder.py holds the layout rules (the graph's I/O keep TFLite's shapes).
"""
from __future__ import annotations

from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.graphio.verify import verify
from edgeq.ir import Graph
from edgeq.ops import REGISTRY, implementations
from edgeq.ops.registry import import_submodules
from edgeq.tflite_import.builder import Importer
from edgeq.tflite_import.reader import is_tflite, read_tflite

STAGE = "tflite-import"


def import_tflite(path: str | Path) -> Graph:
    model = read_tflite(path)
    unknown = sorted({op.builtin for op in model.ops if not implementations(STAGE, op.builtin)})
    if unknown:
        where = {b: [op.index for op in model.ops if op.builtin == b] for b in unknown}
        listed = "; ".join(f"{b} (operator {', '.join(map(str, where[b][:5]))}"
                           f"{', ...' if len(where[b]) > 5 else ''})" for b in unknown)
        raise EdgeqError(f"{Path(path).name}: no TFLite importer for {listed}", REGISTRY.stage(STAGE).fix)
    imp = Importer(model)
    for index in model.inputs:
        imp.g.inputs.append(imp.activation(index, nchw=False))
    for op in model.ops:
        implementations(STAGE, op.builtin)[0].fn(imp, op)
    imp.g.outputs = [imp.plain(index) for index in model.outputs]
    imp.g.prune()
    verify(imp.g)
    return imp.g


def supported_builtins() -> list[str]:
    return sorted(REGISTRY.implemented(STAGE))


import_submodules(__name__, __path__)

__all__ = ["import_tflite", "is_tflite", "supported_builtins"]
