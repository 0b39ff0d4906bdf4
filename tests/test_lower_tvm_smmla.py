"""A whole model on an i8mm CPU: `edgeq compile --target arm64 --cpu max`, then `edgeq run
--check` under `qemu-aarch64 -cpu max` (which has i8mm), bit-identical with the integer
reference; the report names smmla for the pointwise layers and sdot for the others, and
the static binary holds `smmla`. Kernel-level cases: tests/test_lower_tvm.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tvm")
if not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc")):
    pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc", allow_module_level=True)


def _edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=1800)


def test_kws01_on_max_runs_smmla_bit_exact(tmp_path):
    from tests.conftest import mlperf_model
    from edgeq.models.mlperf_inputs import mlperf_inputs
    path = mlperf_model("kws01")
    np.save(tmp_path / "calib.npy", mlperf_inputs("kws01", "calib", n=32))
    np.save(tmp_path / "x.npy", mlperf_inputs("kws01", "eval", n=4))
    out = tmp_path / "kws01_max"
    res = _edgeq("compile", path, "--target", "arm64", "--cpu", "max", "--calib", tmp_path / "calib.npy",
                 "-q", "-o", out)
    assert res.returncode == 0, res.stderr
    res = _edgeq("run", out, "-i", tmp_path / "x.npy", "--check")
    assert res.returncode == 0, res.stderr
    assert "bit-identical" in res.stdout
    arm64 = json.loads((out / "report.json").read_text())["arm64"]
    products = arm64["layer_inner_product"]
    # DS-CNN: four pointwise convs of 125 pixels x 64 channels (smmla); the 10x4 stem
    # and the batch-1 Gemm (one pixel) keep sdot
    assert sorted(products.values()) == ["sdot", "sdot", "smmla", "smmla", "smmla", "smmla"]
    assert arm64["inner_product"] == "smmla (4 layers) + sdot (2 layers)"
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(out / "model_arm64")], capture_output=True,
                         text=True, check=True).stdout
    assert "\tsmmla\t" in dis


def test_two_scratch_buffers_do_not_overlap_in_a_model(tmp_path):
    """Odd pixel counts give an smmla kernel two scratch arguments (the extended input and
    the whole-tile results); model.c once passed both the same pointer, which only stayed
    exact when C == Co (kws01). Two pointwise convs 16 -> 24 -> 40 on 5 x 5 pixels."""
    import onnx
    from onnx import helper
    from tests._onnx_builders import make_model
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(0, 0.3, (24, 16, 1, 1)).astype(np.float32), "b1": rng.normal(0, 0.1, 24).astype(np.float32),
             "w2": rng.normal(0, 0.3, (40, 24, 1, 1)).astype(np.float32), "b2": rng.normal(0, 0.1, 40).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"])]
    onnx.save(make_model(nodes, [("x", [1, 16, 5, 5])], [("y", [1, 40, 5, 5])], inits), tmp_path / "pw.onnx")
    np.save(tmp_path / "calib.npy", rng.normal(0, 1, (16, 16, 5, 5)).astype(np.float32))
    np.save(tmp_path / "x.npy", rng.normal(0, 1, (4, 16, 5, 5)).astype(np.float32))
    out = tmp_path / "pw_max"
    res = _edgeq("compile", tmp_path / "pw.onnx", "--target", "arm64", "--cpu", "max", "--calib",
                 tmp_path / "calib.npy", "-q", "-o", out)
    assert res.returncode == 0, res.stderr
    assert list(json.loads((out / "report.json").read_text())["arm64"]["layer_inner_product"].values()) == \
        ["smmla", "smmla"]
    res = _edgeq("run", out, "-i", tmp_path / "x.npy", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bit-identical" in res.stdout
