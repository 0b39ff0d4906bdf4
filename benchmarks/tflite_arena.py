"""edgeq's static arena beside TFLite Micro's arena for the same model.

For every Fashion-MNIST reference net in models/ and every MLPerf Tiny model in
../shared (each skipped when absent): quantize (32 calibration samples), plan edgeq's
arena (edgeq.codegen.plan_memory: the C build's plan), export to .tflite and measure TFLite Micro's
arena for that file (tflite-micro's Python interpreter, print_allocations()).

    python benchmarks/tflite_arena.py [--models kws01,ic01]

Columns: edgeq arena (activations + kernel scratch, 16-byte aligned buffers); TFLM head
(its planned activations and scratch: the number comparable with edgeq's arena) and
TFLM total (head + persistent tail: TfLiteEvalTensor and node structs, per-channel
multipliers; host build, 64-bit pointers, so the tail is larger than on a 32-bit MCU).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cases():
    from edgeq.models.registry import REFERENCE_MODELS
    from tests.conftest import MLPERF, MLPERF_MODELS
    for name, path in REFERENCE_MODELS.items():
        yield "fmnist", name, path
    for name in MLPERF_MODELS:
        yield "mlperf", name, MLPERF / name / "model.onnx"


def calib(kind: str, name: str):
    if kind == "mlperf":
        from edgeq.models.mlperf_inputs import mlperf_inputs
        return mlperf_inputs(name, "calib", n=32)
    from edgeq.models.fmnist import load_fmnist, preprocess
    return preprocess(load_fmnist("train")[0][:32])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated subset (default: all present)")
    args = ap.parse_args(argv)
    wanted = set(filter(None, args.models.split(",")))
    from edgeq.codegen import plan_memory
    from edgeq.driver.pipeline import CompileOptions, compile_model
    from edgeq.export.tflite import export_tflite
    from edgeq.export.tflite_run import tflm_allocations

    header = f"{'model':<22}{'edgeq arena':>13}{'TFLM head':>12}{'TFLM total':>12}{'head/edgeq':>12}{'tflite B':>10}"
    print(header)
    print("-" * len(header))
    for kind, name, path in cases():
        if wanted and name not in wanted:
            continue
        label = f"{kind}/{name}"
        if not Path(path).is_file():
            print(f"{label:<22}  (absent: {path})")
            continue
        t0 = time.perf_counter()
        q = compile_model(str(path), CompileOptions(progress=False, calib_limit=32), None,
                          calib=calib(kind, name), log=lambda s: None).qgraph
        ours = plan_memory(q).arena_bytes
        data = export_tflite(q)
        tflm = tflm_allocations(data)
        print(f"{label:<22}{ours:>13,}{tflm['head']:>12,}{tflm['total']:>12,}"
              f"{tflm['head'] / ours:>12.2f}{len(data):>10,}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
