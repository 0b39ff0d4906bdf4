"""Usage errors and exit codes of the real `edgeq` command (run as a subprocess).

The exit codes are the README's table: 0 ok, 1 error, 2 usage, 3 check mismatch,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import edgeq
from .test_cli_errors import conv_model

EDGEQ = [sys.executable, "-m", "edgeq.cli"]


def edgeq_cli(*args, cwd=None):
    return subprocess.run([*EDGEQ, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_usage_error(proc, needle):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle.lower() in lines[0].lower() and "--help" in lines[0], lines[0]


@pytest.mark.parametrize("args,needle", [
    ([], "missing command"),
    (["compile"], "missing argument"),
    (["compile", "m.onnx", "--bogus"], "no such option"),
    (["frobnicate"], "no such command"),
    (["compile", "m.onnx", "--calib-percentile", "abc"], "--calib-percentile"),
    (["run", "build"], "--input"),
], ids=["no-command", "missing-argument", "unknown-option", "unknown-command", "bad-float", "missing-option"])
def test_usage_errors_are_one_line_exit_2(args, needle):
    assert_usage_error(edgeq_cli(*args), needle)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_exits_0(flag):
    for args in ([flag], ["compile", flag], ["inspect", flag]):
        proc = edgeq_cli(*args)
        assert proc.returncode == 0 and "Usage" in proc.stdout and not proc.stderr, proc.stderr


def test_version():
    proc = edgeq_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"edgeq {edgeq.__version__}"


def test_error_exits_1(tmp_path):
    proc = edgeq_cli("compile", tmp_path / "nope.onnx", "-o", tmp_path / "o")
    assert proc.returncode == 1 and proc.stderr.startswith("error:"), proc.stderr


def _tamper_first_weight(q_onnx):
    """Change one int8 weight of a build's model.q.onnx (what `--check` reads)."""
    import onnx
    from onnx import numpy_helper
    q = onnx.load(q_onnx)
    w = next(t for t in q.graph.initializer
             if t.data_type == onnx.TensorProto.INT8 and numpy_helper.to_array(t).size > 1)
    arr = numpy_helper.to_array(w).copy()
    arr.flat[0] = np.int8(77 if arr.flat[0] != 77 else -77)
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    onnx.save(q, q_onnx)


def test_run_check_mismatch_exits_3(tmp_path):
    """The host target runs its compiled executable; `--check` runs the integer reference on
    model.q.onnx. A tampered model.q.onnx makes them differ: exit 3, one line."""
    out = tmp_path / "host"
    proc = edgeq_cli("compile", conv_model(tmp_path / "m.onnx"), "-t", "host", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(2).normal(size=(3, 1, 8, 8)).astype(np.float32))
    ok = edgeq_cli("run", out, "--input", x, "--check")
    assert ok.returncode == 0, ok.stderr
    _tamper_first_weight(out / "model.q.onnx")
    bad = edgeq_cli("run", out, "--input", x, "--check", "--output", tmp_path / "y.npy")
    assert bad.returncode == 3, bad.stdout + bad.stderr
    err = bad.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "differs from the integer reference" in err[0], err
    assert (tmp_path / "y.npy").is_file()  # the target's outputs are still written, for a look


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_signal_during_compile(tmp_path, sig, code, word):
    """Ctrl-C / SIGTERM while compiling (once the output folder is staged, during the
    build): one line, exit 130 / 143, no output folder and no temp folder left."""
    from edgeq.models.registry import model_path
    out = tmp_path / "out"
    proc = subprocess.Popen([*EDGEQ, "compile", str(model_path("dscnn")), "-t", "cortex-m7", "-o", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(tmp_path.glob(".out.*")) and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.01)
    assert proc.poll() is None, "the compile ended before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stdout + stderr
    assert stderr.strip().splitlines()[-1] == word and "Traceback" not in stderr, stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_control_characters_and_markup_in_messages_are_printed_inert(tmp_path):
    """A node name carrying rich markup and a terminal escape sequence reaches the error
    line as plain text: no MarkupError traceback, no raw ESC byte on stderr."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Erf", ["x"], ["y"], name="[/]bad\x1b[2Jname")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    res = subprocess.run([sys.executable, "-m", "edgeq.cli", "compile", str(path), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "\x1b" not in res.stderr
    assert "[/]bad" in res.stderr and "2Jname" in res.stderr
