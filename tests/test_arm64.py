"""The arm64 target end to end: `edgeq compile --target arm64` (both lowerings), `edgeq run
--check` under qemu-aarch64, `edgeq profile` on qemu, on a phone over a stand-in adb
(tests/fake_adb/adb: the commands run under qemu-aarch64) and on the host, and the real
models bit-exact with the integer reference (np.array_equal).

TVM objects are cached by their parameters ($EDGEQ_CACHE/tvm), so after the first run the
default tests spend their time in quantization and qemu, not in TVM.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc")):
    pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc", allow_module_level=True)

from edgeq.errors import EdgeqError  # noqa: E402
from edgeq.reference.interpreter import quantize_inputs, run_reference  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAKE_ADB = Path(__file__).resolve().parent / "fake_adb"


def _have_tvm() -> bool:
    try:
        import tvm  # noqa: F401
    except ImportError:
        return False
    return True


needs_tvm = pytest.mark.skipif(not _have_tvm(), reason="TVM (the tvm extra) is not installed")


def edgeq_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=1800)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The conv/depthwise/residual/pool/gemm net (every op has a TVM kernel) and the
    activations net (LUTs, mul, concat, pad, PReLU: C fallbacks), with data."""
    from tests._onnx_builders import exported, rand
    root = tmp_path_factory.mktemp("arm64")
    nets = {}
    for net in ("convbn", "acts"):
        path, shape = exported(net, "legacy")
        np.save(root / f"{net}_calib.npy", rand((16,) + shape[1:]))
        np.save(root / f"{net}_x.npy", rand((5,) + shape[1:], seed=1))
        nets[net] = (path, root)
    return nets


def _compile(small, net: str, lowering: str, *extra) -> Path:
    path, root = small[net]
    out = root / f"{net}_{lowering}"
    if not out.exists():
        res = edgeq_cli("compile", path, "--target", "arm64", "--lowering", lowering, "--calib",
                        root / f"{net}_calib.npy", "-q", "-o", out, *extra)
        assert res.returncode == 0, res.stderr
        (out.parent / f"{net}_{lowering}.summary").write_text(res.stdout)
    return out


@pytest.mark.parametrize("net, lowering", [
    ("convbn", "c"), pytest.param("convbn", "tvm", marks=needs_tvm), pytest.param("acts", "tvm", marks=needs_tvm),
    pytest.param("acts", "c", marks=pytest.mark.slow)])   # acts' C kernels: the host target's tests too
def test_compile_and_run_check(small, net, lowering):
    """`edgeq run --check` exits 0 only when the binary's outputs under qemu-aarch64 are
    bit-identical to the reference; the outputs it writes are compared here too."""
    out = _compile(small, net, lowering)
    root = small[net][1]
    res = edgeq_cli("run", out, "-i", root / f"{net}_x.npy", "--check", "--raw", "-o", root / f"{net}_{lowering}_y.npy")
    assert res.returncode == 0, res.stderr
    assert "bit-identical" in res.stdout
    from edgeq.graphio.onnx_io import load_graph
    q = load_graph(out / "model.q.onnx")
    feeds = quantize_inputs(q, {q.inputs[0]: np.load(root / f"{net}_x.npy")})
    want = run_reference(q, feeds)[q.outputs[0]]
    got = np.load(root / f"{net}_{lowering}_y.npy")
    assert got.dtype == np.int8 and np.array_equal(got, want)
    report = json.loads((out / "report.json").read_text())
    assert report["self_check"]["passed"] and report["self_check"]["vectors"] == 4
    assert report["arm64"]["lowering"] == lowering and report["arm64"]["cpu"] == "cortex-a76"


@needs_tvm
def test_summary_names_the_c_fallbacks(small):
    """Ops without a TVM kernel run their C kernel, and the compile summary says which."""
    _compile(small, "acts", "tvm")
    summary = (small["acts"][1] / "acts_tvm.summary").read_text()
    line = next(l for l in summary.splitlines() if l.strip().startswith("kernels"))
    assert "TVM for" in line and "C kernels (no TVM kernel) for" in line and "QLut" in line, line
    report = json.loads((small["acts"][1] / "acts_tvm" / "report.json").read_text())
    assert report["arm64"]["c_layers"].get("QLut", 0) >= 1 and report["arm64"]["tvm_layers"] >= 3


@needs_tvm
def test_every_layer_of_convbn_is_tvm(small):
    report = json.loads((_compile(small, "convbn", "tvm") / "report.json").read_text())
    a = report["arm64"]
    assert a["c_layers"] == {} and a["tvm_layers"] + a["free_layers"] == len(report["layers"])


@needs_tvm
def test_profile_qemu_counts_every_layer(small):
    out = _compile(small, "convbn", "tvm")
    res = edgeq_cli("profile", out, "--device", "qemu")
    assert res.returncode == 0, res.stderr
    prof = json.loads((out / "report.json").read_text())["profile"]
    assert prof["device"] == "qemu" and "not cycles" in prof["counter"]
    counts = [l["instructions"] for l in prof["layers"]]
    assert len(counts) == len(json.loads((out / "report.json").read_text())["layers"])
    assert sum(counts) == prof["instructions"] and min(counts) > 0
    again = edgeq_cli("profile", out, "--device", "qemu")
    assert json.loads((out / "report.json").read_text())["profile"]["instructions"] == prof["instructions"], again.stderr


def _phone_env(tmp_path: Path) -> dict:
    (tmp_path / "phone").mkdir()
    return {**os.environ, "PATH": f"{FAKE_ADB}{os.pathsep}{os.environ['PATH']}",
            "FAKE_ADB_ROOT": str(tmp_path / "phone"), "FAKE_ADB_LOG": str(tmp_path / "adb.log")}


@pytest.mark.parametrize("lowering", ["c", pytest.param("tvm", marks=needs_tvm)])
def test_profile_adb_with_stand_in(small, tmp_path, lowering):
    """push, pin to the fastest cores (core 7 of the stand-in's 4+3+1), warm-up + timed
    runs, median/p90 per inference and per layer; nothing pulled, nothing left behind."""
    out = _compile(small, "convbn", lowering)
    env = _phone_env(tmp_path)
    res = edgeq_cli("profile", out, "--device", "adb", "--warmup", 1, "--iterations", 4, env=env)
    assert res.returncode == 0, res.stderr
    assert "latency per inference: median" in res.stdout
    prof = json.loads((out / "report.json").read_text())["profile"]
    assert prof["device"] == "adb" and prof["iterations"] == 4 and prof["warmup"] == 1
    assert prof["cores"] == [7] and prof["taskset_mask"] == "80"
    assert 0 < prof["latency_median_us"] <= prof["latency_p90_us"]
    assert len(prof["layers"]) == len(json.loads((out / "report.json").read_text())["layers"])
    log = (tmp_path / "adb.log").read_text().splitlines()
    assert any(l.startswith("push ") and l.endswith("/model_arm64") for l in log)
    assert any("taskset 80 " in l and "--bench 1 4" in l for l in log)
    assert not any(l.startswith("pull") for l in log)
    assert log[-1].startswith("shell 'rm -rf /data/local/tmp/edgeq-")
    assert not list((tmp_path / "phone" / "data").rglob("*model_arm64*"))


def test_profile_adb_unknown_serial_is_one_line(small, tmp_path):
    out = _compile(small, "convbn", "c")
    res = edgeq_cli("profile", out, "--device", "adb:XYZ123", env=_phone_env(tmp_path))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "serial XYZ123" in res.stderr


@pytest.mark.skipif(platform.machine() in ("aarch64", "arm64"), reason="this machine is aarch64")
def test_profile_host_on_x86_is_one_line(small):
    res = edgeq_cli("profile", _compile(small, "convbn", "c"), "--device", "host")
    assert res.returncode == 1 and "not aarch64" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, words", [
    (["--target", "arm64", "--cpu", "cortex-a99"], "unknown ARM CPU 'cortex-a99'"),
    (["--target", "arm64", "--lowering", "llvm"], "unknown --lowering 'llvm'"),
    (["--target", "host", "--cpu", "cortex-a76"], "not of target 'host'"),
])
def test_bad_cpu_or_lowering_is_one_line(small, tmp_path, args, words):
    path, root = small["convbn"]
    res = edgeq_cli("compile", path, *args, "-o", tmp_path / "out")
    assert res.returncode == 1, res.stderr
    assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_tvm_stage_is_registered():
    """The TVM kernels are the registry's "tvm" stage; an op without one is named."""
    import edgeq.lower_tvm  # noqa: F401  (the stage's package registers its kernels)
    from edgeq.ops import implementations, lookup
    for op in ("QConv", "QGemm", "QAdd", "QMaxPool", "QAvgPool"):
        assert implementations("tvm", op), op
    with pytest.raises(EdgeqError, match=r"no TVM kernel for op QSoftmax \(node 'sm'\).*--lowering c"):
        lookup("tvm", "QSoftmax", "sm")


@needs_tvm
def test_free_transpose_is_planned_as_an_alias(tmp_path):
    """An NHWC input transposed to NCHW and read by a conv moves no data: the transpose's
    output must share the input's bytes (it was planned elsewhere and left unwritten once
    the planner asked the declarations, which know QReshape only in domain ai.edgeq)."""
    from edgeq.ir import QDOMAIN, Node, Tensor
    from edgeq.lower_tvm.cpus import get_cpu
    from edgeq.lower_tvm.model import lower_model
    from edgeq.options import BuildOptions
    from edgeq.targets.arm64 import Arm64Target
    from tests.test_lower_tvm import conv_case
    g, conv, _, _, _ = conv_case(1, 8, 5, 6, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    g.inputs = ["x_nhwc"]
    g.add_tensor(Tensor("x_nhwc", (1, 5, 6, 8), "int8"))
    g.nodes = [Node("QTranspose", "t", ["x_nhwc"], ["x"], {"perm": [0, 3, 1, 2]}, QDOMAIN), conv]
    g.outputs = ["y"]
    m = lower_model(g, get_cpu("cortex-a76"))
    assert m.steps[0].free and m.plan.offsets["x"] == m.plan.offsets["x_nhwc"]
    x = np.random.default_rng(1).integers(-128, 128, (3, 5, 6, 8), dtype=np.int8)
    target = Arm64Target()
    target.build(g, tmp_path, {}, BuildOptions(test_vectors={"x_nhwc": x[:1]}, lowering="tvm"))
    assert np.array_equal(target.run(tmp_path, {"x_nhwc": x})["y"], run_reference(g, {"x_nhwc": x})["y"])


# ---- real models ---------------------------------------------------------------------------

def _model(name: str):
    """(float ONNX path, calibration, 4 evaluation inputs)."""
    if name.startswith("fmnist_"):
        from edgeq.models.fmnist import load_fmnist, preprocess
        from edgeq.models.registry import model_path
        return model_path(name.removeprefix("fmnist_")), preprocess(load_fmnist("train")[0][:64]), \
            preprocess(load_fmnist("test")[0][:4])
    if name == "mobilenetv2":
        from edgeq.models.mobilenetv2_imagenet import export_onnx
        from edgeq.models.natural_images import natural_images
        return export_onnx(), natural_images(16, seed=1), natural_images(4, seed=0)
    from tests.conftest import mlperf_model
    from edgeq.models.mlperf_inputs import mlperf_inputs
    return mlperf_model(name), mlperf_inputs(name, "calib", n=32), mlperf_inputs(name, "eval", n=4)


def _check_model(name: str, tmp_path: Path) -> None:
    """Compile for arm64 (TVM; the C lowering of the same quantized graph beside it), run
    4 real inputs under qemu-aarch64, compare with the reference bit for bit."""
    import edgeq
    from edgeq.options import BuildOptions
    from edgeq.targets.arm64 import Arm64Target
    path, calib, x = _model(name)
    res = edgeq.compile(str(path), target="arm64", out_dir=tmp_path / "tvm", calib=calib, calib_limit=len(calib),
                        progress=False)
    q = res.qgraph
    feeds = quantize_inputs(q, {q.inputs[0]: x})
    want = run_reference(q, feeds)
    target = Arm64Target()
    target.build(q, tmp_path / "c", {}, BuildOptions(test_vectors=None, lowering="c"))
    for lowering in ("tvm", "c"):
        got = target.run(tmp_path / lowering, feeds)
        for out in q.outputs:
            assert np.array_equal(got[out], want[out]), (name, lowering, out)
    assert res.report["self_check"]["passed"]


@needs_tvm
@pytest.mark.parametrize("name", ["ad01"])
def test_model_bit_exact(name, tmp_path):
    _check_model(name, tmp_path)


@pytest.mark.slow
@needs_tvm
@pytest.mark.parametrize("name", ["kws01", "ic01", "vww01", "sww01", "ic01_large", "fmnist_dscnn",
                                  "fmnist_mobilenetv2", "fmnist_resnet8", "mobilenetv2"])
def test_model_bit_exact_slow(name, tmp_path):
    _check_model(name, tmp_path)
