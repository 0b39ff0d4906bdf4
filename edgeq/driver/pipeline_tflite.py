"""`edgeq compile model.tflite`: an int8 TFLite model taken as it is.

No float passes, no calibration, no quantization: edgeq.tflite_import reads the file's
own int8 graph (scales, zero points, per-channel weights, multipliers as TFLite Micro
derives them) and pipeline.compile_tflite builds it for the target, so every target gives
TFLite Micro's outputs bit for bit. The quantizer's options would change nothing here,
so giving one is an error (one line naming the flag).
"""
from __future__ import annotations

import time
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.options import CompileOptions
from edgeq.report.report import base_report
from edgeq.tflite_import import import_tflite

# CompileOptions field -> (its default, the flag that sets it): settings of the quantizer
QUANTIZER_SETTINGS = {
    "weight_bits": (8, "--weight-bits"), "weight_granularity": ("per-channel", "--weight-granularity"),
    "equalize": (None, "--equalize"), "bias_correction": (None, "--bias-correction"),
    "dfq_guard": (None, "--dfq-guard"), "calib_method": (None, "--calib-method"),
    "calib_percentile": (None, "--calib-percentile"),
}


def check_options(opts: CompileOptions, has_calib: bool, model: Path) -> None:
    if has_calib:
        raise EdgeqError(f"{model.name} is already quantized, so --calib has nothing to calibrate",
                         "drop --calib (edgeq keeps the file's scales and zero points as they are)")
    for field, (default, flag) in QUANTIZER_SETTINGS.items():
        if getattr(opts, field) != default:
            raise EdgeqError(f"{model.name} is already quantized, so {flag} cannot apply",
                             f"drop {flag}, or compile the float ONNX model to quantize it with edgeq")


def import_as_is(model: Path, opts: CompileOptions, has_calib: bool) -> tuple[Graph, dict]:
    """(the file's quantized graph, its report before the build)."""
    check_options(opts, has_calib, Path(model))
    t0 = time.perf_counter()
    qgraph = import_tflite(model)
    report = base_report(qgraph, opts.target)
    report.update(source={"format": "tflite", "file": Path(model).name}, passes=[], notices=[],
                  timings={"import_s": time.perf_counter() - t0},
                  options={"quantization": "as in the .tflite file"})
    return qgraph, report
