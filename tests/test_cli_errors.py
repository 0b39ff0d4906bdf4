"""Bad input at the command line: one clear line, a non-zero exit, no traceback, no DIR."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def edgeq(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeq.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_clean_failure(proc, *needles):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    text = proc.stderr.strip()
    assert text.startswith("error:"), text
    for needle in needles:
        assert needle.lower() in text.lower(), text


def _save(model, path):
    model.ir_version = 8
    onnx.save(model, path)
    return path


def conv_model(path, batch=1, op="Relu", height=8):
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 1, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, height, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["y"], name="act0")]
    g = helper.make_graph(nodes, "g", [x], [y], [w])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_truncated_file(tmp_path):
    good = conv_model(tmp_path / "good.onnx")
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(good.read_bytes()[:100])
    out = tmp_path / "out"
    assert_clean_failure(edgeq("compile", bad, "-o", out), "truncated.onnx")
    assert not out.exists()


def test_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n")
    out = tmp_path / "out"
    assert_clean_failure(edgeq("compile", bad, "-o", out))
    assert not out.exists()


def test_missing_file(tmp_path):
    assert_clean_failure(edgeq("compile", tmp_path / "nope.onnx", "-o", tmp_path / "o"), "does not exist")


def test_unsupported_op(tmp_path):
    model = conv_model(tmp_path / "m.onnx", op="Erf")
    out = tmp_path / "out"
    proc = edgeq("compile", model, "-o", out)
    assert_clean_failure(proc, "Erf", "act0")
    assert not out.exists()


def test_input_shape_of_the_wrong_rank_shows_the_declared_dims(tmp_path):
    model = conv_model(tmp_path / "m.onnx", batch="N")
    proc = edgeq("compile", model, "-o", tmp_path / "o", "--input-shape", "x=1x8x8")
    assert_clean_failure(proc, "give 4 dims: --input-shape x=?x1x8x8")


def test_inspect_takes_input_shape(tmp_path):
    """`inspect` names --input-shape in its fix, so it has the option, as compile does."""
    model = conv_model(tmp_path / "m.onnx", batch="N", height="h")
    assert_clean_failure(edgeq("inspect", model), "--input-shape x=1x1xHx8")
    ok = edgeq("inspect", model, "--input-shape", "x=1x1x8x8")
    assert ok.returncode == 0, ok.stderr
    assert "Conv" in ok.stdout and "1x4x8x8" in ok.stdout


def test_dynamic_shape_needs_input_shape(tmp_path):
    model = conv_model(tmp_path / "m.onnx", batch="N", height="h")
    out = tmp_path / "out"
    # the fix names the model's own shape with only the unknown dim open (the batch is 1)
    assert_clean_failure(edgeq("compile", model, "-o", out), "--input-shape x=1x1xHx8 with H set to a number")
    assert not out.exists()
    ok = edgeq("compile", model, "-o", out, "--input-shape", "x=1x1x8x8", "-q")
    assert ok.returncode == 0, ok.stderr
    assert (out / "report.json").is_file()


@pytest.mark.parametrize("array", [np.zeros((4, 1, 9, 9), np.float32), np.zeros((4, 1, 8, 8), np.complex64)],
                         ids=["wrong-shape", "wrong-dtype"])
def test_bad_calibration(tmp_path, array):
    model = conv_model(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, array)
    out = tmp_path / "out"
    assert_clean_failure(edgeq("compile", model, "--calib", calib, "-o", out), "calib")
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--calib-percentile", "120"], "outside"),
    (["--calib-percentile", "99.9", "--calib-method", "minmax"], "--calib-method percentile"),
    (["--calib-percentile", "99.999", "--no-calib"], "no calibration data"),
])
def test_bad_calibration_percentile(tmp_path, args, needle):
    model = conv_model(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).normal(size=(8, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    calib_args = [] if "--no-calib" in args else ["--calib", calib]
    args = [a for a in args if a != "--no-calib"]
    assert_clean_failure(edgeq("compile", model, *calib_args, *args, "-o", out), needle)
    assert not out.exists()


def test_unwritable_output(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clean_failure(edgeq("compile", model, "-o", blocker / "sub"), "output")


def test_unknown_target(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    assert_clean_failure(edgeq("compile", model, "--target", "cortex-m99", "-o", tmp_path / "o"), "cortex-m99")


def test_compile_run_inspect_reference(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).normal(size=(16, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    proc = edgeq("compile", model, "--calib", calib, "-o", out, "-q", "--calib-percentile", "99.999")
    assert proc.returncode == 0, proc.stderr
    for f in ("report.json", "model.float.onnx", "model.q.onnx"):
        assert (out / f).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["calibration"] == {"method": "percentile", "samples": 16, "percentile": 99.999}
    assert "percentile 99.999 on 16 samples" in " ".join(proc.stdout.split())
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(2).normal(size=(3, 1, 8, 8)).astype(np.float32))
    run = edgeq("run", out, "--input", x, "--output", tmp_path / "y.npy", "--check")
    assert run.returncode == 0, run.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 4, 8, 8) and y.dtype == np.float32
    raw = edgeq("run", out, "--input", x, "--output", tmp_path / "yr.npy", "--raw")
    assert raw.returncode == 0 and np.load(tmp_path / "yr.npy").dtype == np.int8
    insp = edgeq("inspect", out)
    assert insp.returncode == 0 and "QConv" in insp.stdout


def test_targets_command_lists_every_registered_target():
    from edgeq.targets import target_names
    proc = edgeq("targets")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert set(target_names()) <= listed


def test_all_unsupported_ops_on_one_line(tmp_path):
    model = conv_model(tmp_path / "m.onnx", op="Erf")
    m = onnx.load(model)
    m.graph.node.append(helper.make_node("Acos", ["y"], ["z"], name="acos0"))
    m.graph.output[0].name = "z"
    out = tmp_path / "out"
    proc = edgeq("compile", _save(m, tmp_path / "m2.onnx"), "-o", out)
    assert_clean_failure(proc, "2 unsupported ops: Erf in node 'act0'; Acos in node 'acos0'")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
