"""Float vs int8 top-1 on the Fashion-MNIST 10k test set (the README's accuracy table).

    python benchmarks/fmnist_accuracy.py [--granularity per-channel] [--limit 10000]

Float: onnxruntime on the committed ONNX file. Int8: `edgeq compile --target reference`
calibrated on the first 512 training images, run by the integer reference.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import run_onnx  # noqa: E402


def int8_logits(model: Path, calib: np.ndarray, x: np.ndarray, granularity: str, **opts) -> np.ndarray:
    import edgeq
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    q = edgeq.compile(model, target="reference", calib=calib, weight_granularity=granularity,
                      progress=False, **opts).qgraph
    ys = []
    for i in range(0, len(x), 500):
        feeds = quantize_inputs(q, {q.inputs[0]: x[i:i + 500]})
        ys.append(dequantize_outputs(q, run_reference(q, feeds))[q.outputs[0]])
    return np.concatenate(ys)


def main() -> int:
    from edgeq.models.fmnist import load_fmnist, preprocess
    from edgeq.models.registry import REFERENCE_MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granularity", default="per-channel", choices=["per-channel", "per-tensor"])
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--models", default=",".join(REFERENCE_MODELS))
    ap.add_argument("--calib-percentile", type=float, default=None, help="edgeq's --calib-percentile")
    args = ap.parse_args()

    train_x, _ = load_fmnist("train")
    test_x, test_y = load_fmnist("test")
    calib = preprocess(train_x[:512])
    x, y = preprocess(test_x[:args.limit]), test_y[:args.limit]
    print(f"| model | float top-1 | int8 top-1 ({args.granularity}) | difference (points) | int8 time |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for name in args.models.split(","):
        path = Path(REFERENCE_MODELS[name])
        f_acc = float(np.mean(np.argmax(run_onnx(path, x), axis=1) == y)) * 100
        t0 = time.perf_counter()
        q_acc = float(np.mean(np.argmax(int8_logits(path, calib, x, args.granularity,
                                                         calib_percentile=args.calib_percentile), axis=1) == y)) * 100
        dt = time.perf_counter() - t0
        worst = max(worst, f_acc - q_acc)
        print(f"| {name} | {f_acc:.2f}% | {q_acc:.2f}% | {q_acc - f_acc:+.2f} | {dt:.0f} s |")
    pct = "" if args.calib_percentile is None else f", --calib-percentile {args.calib_percentile:g}"
    print(f"\n{len(y)} test images; calibration: 512 training images{pct}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
