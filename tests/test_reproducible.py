"""Reproducible builds: the same model, calibration data and options give byte-identical
files, whatever the output folder, working directory, temporary directory, runtime-library
cache and PYTHONHASHSEED (two `edgeq compile` processes per target).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

# what must be identical; report.json is not (it records timings)
FILES = {
    "cortex-m7": ["src/model.c", "src/model.h", "model.q.onnx", "model.float.onnx", "fw.elf"],
    "tflite": ["model.tflite", "model.q.onnx", "model.float.onnx"],
}


def compile_twice(target: str, tmp_path):
    """Run 1: absolute paths from one folder. Run 2: relative paths from a deeper one, its
    own TMPDIR (the build's hidden folder), a fresh runtime-library cache, another hash seed."""
    from edgeq.models.fmnist import available, load_fmnist, preprocess
    from edgeq.models.registry import model_path
    if not available():
        pytest.skip("Fashion-MNIST is not installed (make setup)")
    images, _ = load_fmnist("train")
    runs = []
    for k, sub in enumerate(("one", "two/deeper/still")):
        cwd = tmp_path / sub
        (cwd / "tmp").mkdir(parents=True)
        np.save(cwd / "calib.npy", preprocess(images[:4]))  # few: calibration cost is not the point
        shutil.copy(model_path("dscnn"), cwd / "model.onnx")
        model, calib, out = ("model.onnx", "calib.npy", f"out{k}") if k else (
            cwd / "model.onnx", cwd / "calib.npy", cwd / f"out{k}")
        env = dict(os.environ, PYTHONHASHSEED=str(11 + 26 * k), TMPDIR=str(cwd / "tmp"))
        if k:
            env["EDGEQ_CACHE"] = str(cwd / "cache")
        proc = subprocess.run([sys.executable, "-m", "edgeq.cli", "compile", str(model), "-t", target,
                               "--calib", str(calib), "-o", str(out), "-q"],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(cwd / out)
    return runs


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")
def test_cortex_m7_build_is_reproducible(tmp_path):
    a, b = compile_twice("cortex-m7", tmp_path)
    for name in FILES["cortex-m7"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_tflite_build_is_reproducible(tmp_path):
    pytest.importorskip("ai_edge_litert")
    a, b = compile_twice("tflite", tmp_path)
    for name in FILES["tflite"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
