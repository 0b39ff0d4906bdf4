"""Wall time of `edgeq compile` for a 3.5M-parameter MobileNetV2 with 256 calibration images.

    python benchmarks/compile_time.py [--calib 256] [--target reference]

Uses torchvision's MobileNetV2 layout (edgeq.models.mobilenetv2_imagenet) with the
ImageNet weights when their package is installed, random weights otherwise (the time does
not depend on the values); calibration images are augmented natural-photo crops at
224x224 (edgeq.models.natural_images), ImageNet-normalized.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--target", default="reference")
    args = ap.parse_args()

    import torch
    from edgeq.models import mobilenetv2_imagenet as mnv2
    from edgeq.models.natural_images import natural_images

    work = Path(tempfile.mkdtemp(prefix="edgeq-bench-"))
    try:
        model = mnv2.load_pretrained()
        weights = "ImageNet"
    except Exception:
        torch.manual_seed(0)
        model = mnv2.MobileNetV2().eval()
        weights = "random"
    onnx_path = work / "mobilenetv2.onnx"
    mnv2.export_onnx(onnx_path, model)
    params = sum(p.numel() for p in model.parameters())

    np.save(work / "calib.npy", natural_images(args.calib, seed=3))

    cmd = [sys.executable, "-m", "edgeq.cli", "compile", str(onnx_path), "--target", args.target,
           "--calib", str(work / "calib.npy"), "-o", str(work / "build"), "-q"]
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, check=True)
    finally:
        dt = time.perf_counter() - t0
        shutil.rmtree(work, ignore_errors=True)
    print(f"MobileNetV2 ({params / 1e6:.2f}M parameters, {weights} weights), {args.calib} calibration images, "
          f"target {args.target}: edgeq compile took {dt:.1f} s wall on {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
