"""`edgeq run` / `edgeq profile` on awkward input: one line and exit 1, never a traceback;
a read-only build folder still runs (nothing is written into a build after compile,
except profile's report.json, which is skipped with a note when it cannot be written)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .test_cli_errors import assert_clean_failure, conv_model

EDGEQ = [sys.executable, "-m", "edgeq.cli"]
needs_m7_tools = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                                    reason="needs arm-none-eabi-gcc and qemu-system-arm")


def edgeq_cli(*args):
    return subprocess.run([*EDGEQ, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("run_inputs")
    out = d / "build"
    proc = edgeq_cli("compile", conv_model(d / "m.onnx"), "-t", "host", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    return out


def test_zero_samples(host_build, tmp_path):
    x = tmp_path / "zero.npy"
    np.save(x, np.zeros((0, 1, 8, 8), np.float32))
    assert_clean_failure(edgeq_cli("run", host_build, "--input", x), "0 samples", "'x'")


def test_object_array_in_npz(host_build, tmp_path):
    x = tmp_path / "obj.npz"
    np.savez(x, x=np.array([object(), object()], dtype=object))
    assert_clean_failure(edgeq_cli("run", host_build, "--input", x), "obj.npz", "object")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_rejected(host_build, tmp_path, bad):
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    x[0, 0, 0, 0] = bad
    x[2, 0, 3, 3] = bad
    path = tmp_path / "x.npy"
    np.save(path, x)
    proc = edgeq_cli("run", host_build, "--input", path)
    assert_clean_failure(proc, "'x'", "2 NaN/Inf")
    assert "RuntimeWarning" not in proc.stderr


def _bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def read_only(tmp_path):
    """make(folder) -> a read-only view of `folder` (a read-only bind mount as root, else
    chmod a-w); skips when neither stops a write."""
    mounts = []

    def make(folder: Path) -> Path:
        view = tmp_path / "ro"
        view.mkdir()
        if subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True).returncode == 0:
            mounts.append(view)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True)
        else:
            view.rmdir()
            view = folder
            for p in [view, *view.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
        try:
            (view / "probe").write_text("x")
        except OSError:
            return view
        pytest.skip("cannot make a read-only folder here")
    yield make
    for m in mounts:
        subprocess.run(["umount", str(m)], capture_output=True)


def _copy(build: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "b"
    shutil.copytree(build, copy)
    return copy


def test_host_run_and_profile_on_a_read_only_build(host_build, tmp_path, read_only):
    ro = read_only(_copy(host_build, tmp_path))
    before = _bytes(ro)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(1).normal(size=(2, 1, 8, 8)).astype(np.float32))
    run = edgeq_cli("run", ro, "--input", x, "--check")
    assert run.returncode == 0 and "bit-identical" in run.stdout, run.stdout + run.stderr
    prof = edgeq_cli("profile", ro, "--device", "host")
    assert prof.returncode == 0 and "Traceback" not in prof.stderr, prof.stdout + prof.stderr
    assert "report.json was not updated" in prof.stdout + prof.stderr
    assert _bytes(ro) == before


@needs_m7_tools
def test_mcu_run_and_profile_write_nothing_into_the_build(tmp_path, read_only):
    """cortex-m7 run and profile relink firmware: in a temporary folder, not in DIR; only
    profile's report.json changes (and is skipped with a note when DIR is read-only)."""
    out = tmp_path / "m7"
    proc = edgeq_cli("compile", conv_model(tmp_path / "m.onnx"), "-t", "cortex-m7", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    before = _bytes(out)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(1).normal(size=(2, 1, 8, 8)).astype(np.float32))
    run = edgeq_cli("run", out, "--input", x, "--check")
    assert run.returncode == 0 and "bit-identical" in run.stdout, run.stdout + run.stderr
    assert _bytes(out) == before
    prof = edgeq_cli("profile", out, "--device", "qemu")
    assert prof.returncode == 0, prof.stderr
    after = _bytes(out)
    assert json.loads(after.pop("report.json"))["instructions"] > 0
    before.pop("report.json")
    assert after == before
    ro = read_only(out)
    frozen = _bytes(ro)
    for args in (["run", ro, "--input", x, "--check"], ["profile", ro, "--device", "qemu"]):
        p = edgeq_cli(*args)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    # the DSP kernels do not run on this machine: one line, nothing written
    p = edgeq_cli("profile", ro, "--device", "host")
    assert p.returncode == 1 and "do not run on this machine" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert _bytes(ro) == frozen
