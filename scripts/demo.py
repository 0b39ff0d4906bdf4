"""`make demo`: the main job, end to end, as a user would type it.

1. compile a Fashion-MNIST reference network for cortex-m7 with 512 calibration images;
2. run 200 real test images on the emulated board (QEMU mps2-an500) with --check
   (bit-identical to the integer reference) and score them against the labels;
3. profile it on the board (exact instruction counts per layer);
4. print the report.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = "dscnn"
TARGET = "cortex-m7"
N_TEST = 200


def edgeq(*args: str) -> None:
    cmd = [sys.executable, "-m", "edgeq.cli", *args]
    print(f"\n$ edgeq {shlex.join(args)}", flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    from edgeq.models.fmnist import load_fmnist, preprocess
    from edgeq.models.registry import model_path

    out = REPO / "demo-build"
    work = Path(tempfile.mkdtemp(prefix="edgeq-demo-"))
    train_x, _ = load_fmnist("train")
    test_x, test_y = load_fmnist("test")
    np.save(work / "calib.npy", preprocess(train_x[:512]))
    np.save(work / "test.npy", preprocess(test_x[:N_TEST]))

    t0 = time.perf_counter()
    edgeq("compile", str(model_path(MODEL)), "--target", TARGET, "--calib", str(work / "calib.npy"),
          "-o", str(out))
    compile_s = time.perf_counter() - t0
    edgeq("run", str(out), "--input", str(work / "test.npy"), "--output", str(work / "logits.npy"), "--check")
    edgeq("profile", str(out), "--device", "qemu")

    logits = np.load(work / "logits.npy")
    acc = float(np.mean(np.argmax(logits, axis=1) == test_y[:N_TEST]))
    report = json.loads((out / "report.json").read_text())
    print("\n== edgeq demo report ==")
    print(f"model            models/fmnist_{MODEL}.onnx ({report['macs']:,} MACs)")
    board = report.get("board", {})
    print(f"target           {TARGET}: {board.get('part', '?')} emulated by QEMU {board.get('machine', '?')}")
    print(f"compile time     {compile_s:.1f} s")
    print(f"accuracy         {acc * 100:.1f}% top-1 on {N_TEST} Fashion-MNIST test images (int8, on the board)")
    for key, label in (("flash_bytes", "flash"), ("arena_bytes", "arena"), ("stack_bytes", "peak stack"),
                       ("sram_bytes", "SRAM total")):
        if key in report:
            print(f"{label:<16} {report[key]:,} bytes")
    if "instructions" in report:
        print(f"instructions     {report['instructions']:,} per inference (exact count from QEMU, not cycles)")
    print(f"build folder     {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
