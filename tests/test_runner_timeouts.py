"""A run that outlives its time limit ends in one line naming the cause and the fix, not a
traceback (the host runner once leaked subprocess.TimeoutExpired on 300 ImageNet inputs)."""
from __future__ import annotations

import subprocess

import pytest

from edgeq.errors import EdgeqError
from edgeq.targets import arm64, host


def _times_out(*args, timeout=None, **kwargs):
    raise subprocess.TimeoutExpired(args[0], timeout)


def test_host_run_timeout_is_an_edgeq_error(tmp_path, monkeypatch):
    (tmp_path / host.EXE).write_bytes(b"")
    monkeypatch.setattr(host.subprocess, "run", _times_out)
    with pytest.raises(EdgeqError) as e:
        host.HostTarget()._exec(tmp_path, ["--raw", "300"], b"", timeout=3120)
    assert "did not finish within 3120 s" in str(e.value) and "fewer inputs" in str(e.value)


def test_arm64_run_timeout_is_an_edgeq_error(tmp_path, monkeypatch):
    monkeypatch.setattr(arm64.subprocess, "run", _times_out)
    monkeypatch.setattr(arm64, "device_command", lambda out_dir, info: ["model_arm64"])
    with pytest.raises(EdgeqError) as e:
        arm64._exec(tmp_path, {}, ["--raw", "3"], b"", timeout=300)
    assert "did not finish within 300 s" in str(e.value) and "fewer inputs" in str(e.value)

