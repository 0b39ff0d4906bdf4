"""`edgeq compile model.tflite`: an int8 TFLite model compiled as it is.

No float passes, no calibration, no quantization: edgeq.tflite_import reads the file's
own int8 graph (scales, zero points, per-channel weights, multipliers as TFLite Micro
derives them) and the target builds it, so every target gives TFLite Micro's outputs bit
for bit. The quantization options would change nothing here, so giving one is an error.
DIR holds model.q.onnx and report.json (no model.float.onnx: there is no float model).
"""
from __future__ import annotations

import time
from pathlib import Path

from edgeq.driver.result import CompileResult, test_vectors
from edgeq.errors import EdgeqError
from edgeq.graphio.onnx_io import save_graph
from edgeq.options import CompileOptions
from edgeq.report.report import base_report, write_report
from edgeq.targets import output_dir
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


def compile_tflite(model: Path, opts: CompileOptions, out_dir: Path | None, has_calib: bool, target, inputs):

    check_options(opts, has_calib, Path(model))
    t0 = time.perf_counter()
    qgraph = import_tflite(model)
    timings = {"import_s": time.perf_counter() - t0}
    if out_dir is not None and hasattr(target, "check_fit"):
        target.check_fit(qgraph, base_report(qgraph, opts.target), scratch=opts.scratch)
    report = base_report(qgraph, opts.target)
    report.update(source={"format": "tflite", "file": Path(model).name}, passes=[], notices=[],
                  timings=timings, options={"quantization": "as in the .tflite file"})
    if out_dir is None:
        return CompileResult(None, None, qgraph, report)
    out_dir = Path(out_dir)
    with output_dir.staging(out_dir) as tmp:  # removed on any failure or signal
        save_graph(qgraph, tmp / "model.q.onnx")
        t0 = time.perf_counter()
        target.build(qgraph, tmp, report, opts.build(test_vectors(qgraph, None, opts.test_vectors)))
        timings["build_s"] = time.perf_counter() - t0
        write_report(report, tmp / "report.json")
        output_dir.install(tmp, out_dir, opts.target, inputs)
    return CompileResult(out_dir, None, qgraph, report)
