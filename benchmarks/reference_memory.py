"""Peak memory of the integer reference on an ImageNet-size model: whole batch vs streamed.

MobileNetV2 at 224x224 (models/mobilenetv2_imagenet.py; the architecture with seeded random
weights: memory does not depend on the weight values) is compiled for the reference target
(data-free ranges), then `edgeq run` runs a batch of seeded random int8 inputs in a fresh
process per row, which reports its peak resident set (VmHWM) and wall time. The
`whole` rows call run_reference on the entire batch (what `edgeq run` did before it
streamed); the `streamed` rows are `edgeq run` itself (run_reference_streamed, chunks of
REFERENCE_CHUNK_BYTES). Both results are compared with np.array_equal.

    python benchmarks/reference_memory.py [--whole 2,4] [--streamed 4,16]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
from edgeq.reference.interpreter import run_reference, run_reference_streamed, sample_bytes
from edgeq.graphio.onnx_io import load_graph
build, mode, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
g = load_graph(build + "/model.q.onnx")
x = np.random.default_rng(0).integers(-128, 128, (n,) + g.tensors[g.inputs[0]].shape[1:], dtype=np.int8)
t0 = time.perf_counter()
run = run_reference if mode == "whole" else lambda g, f: run_reference_streamed(g, f, progress=False)
y = run(g, {g.inputs[0]: x})[g.outputs[0]]
np.save(out, y)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": hwm / 1024,
                  "seconds": time.perf_counter() - t0, "sample_mb": sample_bytes(g) / 2**20}))
"""


def compile_model(work: Path) -> Path:
    import torch

    from edgeq.options import CompileOptions
    from edgeq.driver.pipeline import compile_model as compile_
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.mobilenetv2_imagenet import MobileNetV2, export_onnx
    torch.manual_seed(0)
    onnx_path = export_onnx(work / "mnv2.onnx", MobileNetV2())
    out = work / "build"
    compile_(str(onnx_path), CompileOptions(progress=False), out, log=lambda s: None)
    return out


def measure(build: Path, mode: str, n: int, work: Path) -> dict:
    out = work / f"{mode}{n}.npy"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(build), mode, str(n), str(out)],
                          capture_output=True, text=True, check=True)
    return {"mode": mode, "n": n, **json.loads(proc.stdout.strip().splitlines()[-1]), "out": out}


def main() -> None:
    import numpy as np
    ap = argparse.ArgumentParser()
    ap.add_argument("--whole", default="2,4")
    ap.add_argument("--streamed", default="4,16")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeq-refmem-") as tmp:
        work = Path(tmp)
        build = compile_model(work)
        rows = [measure(build, "whole", int(n), work) for n in args.whole.split(",")]
        rows += [measure(build, "streamed", int(n), work) for n in args.streamed.split(",")]
        print(f"MobileNetV2 224x224, integer reference; estimated working set {rows[0]['sample_mb']:.0f} MB "
              "per sample (sample_bytes)")
        print(f"{'run':<10}{'inputs':>8}{'peak RSS MB':>14}{'s/input':>10}")
        for r in rows:
            print(f"{r['mode']:<10}{r['n']:>8}{r['peak_rss_mb']:>14.0f}{r['seconds'] / r['n']:>10.2f}")
        whole = {r["n"]: np.load(r["out"]) for r in rows if r["mode"] == "whole"}
        for r in rows:
            if r["mode"] == "streamed":
                y = np.load(r["out"])
                for n, w in whole.items():
                    k = min(n, r["n"])
                    assert np.array_equal(y[:k], w[:k]), "streamed differs from the whole batch"
        print("streamed outputs equal the whole-batch outputs (np.array_equal)")


if __name__ == "__main__":
    main()
