"""Ethos-U targets: Vela compiles the exported models with every compute op on the NPU,
and report.json carries Vela's numbers; CPU fallbacks are listed with Vela's reason.

Vela takes ~1-2 s per small model; one MLPerf model runs by default, the rest are slow.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.targets import get_target, target_names
from edgeq.targets.npu import ACCELERATORS, COMPUTE_OPS, parse_vela, vela_command
from edgeq.export.tflite import export_tflite
from tests.conftest import MLPERF_MODELS
from tests.test_tflite_export import QB, model_qgraph, op_codes

pytest.importorskip("ethosu.vela")


def build(qgraph, accelerator, tmp_path) -> dict:
    report: dict = {}
    get_target(accelerator).build(qgraph, tmp_path, report)
    return report


def assert_all_compute_on_npu(report):
    npu = report["npu"]
    cpu = [f for f in npu["cpu_fallbacks"] if f["op"] in COMPUTE_OPS]
    assert not cpu, cpu
    assert npu["npu_share"] == 1.0 and npu["vela_cpu_operators"] == 0
    assert npu["npu_cycles"] > 0 and npu["inferences_per_second"] > 0
    assert npu["sram_bytes"] > 0 and report["flash_bytes"] == npu["compiled_bytes"] > 0


def test_npu_builtins_are_ones_vela_supports():
    """The npu stage is derived from NPU_BUILTINS: each must be in the installed Vela's own
    supported-operator list, and the ops Vela leaves on the CPU must not be in it."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite_mapping import builtin_operator_map
    from ethosu.vela.tflite_supported_operators import TFLiteSupportedOperators

    from edgeq.export.tflite import NPU_BUILTINS
    code = {k: v for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    supported = {b for b in code if code[b] in builtin_operator_map
                 and builtin_operator_map[code[b]][0] in TFLiteSupportedOperators.supported_operators}
    assert NPU_BUILTINS <= supported, NPU_BUILTINS - supported
    assert not {"CAST", "GATHER", "PADV2"} & supported


def test_registry_has_the_ethos_targets():
    names = target_names()
    for a in ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256"):
        assert a in names
    assert set(ACCELERATORS) <= set(names)


def test_vela_is_found_without_it_on_path(tmp_path, monkeypatch):
    """edgeq run from a venv that is not activated: vela comes from the interpreter's own
    environment, not from PATH (here PATH holds only the system folders)."""
    import subprocess
    import sys
    from pathlib import Path
    from .test_cli_errors import conv_model
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    exe = vela_command(tmp_path / "m.tflite", "ethos-u55-128", tmp_path)[0]
    assert Path(exe).is_file() and not exe.startswith(("/usr/bin", "/bin"))
    out = tmp_path / "u55"
    proc = subprocess.run([sys.executable, "-m", "edgeq.cli", "compile", str(conv_model(tmp_path / "m.onnx")),
                           "-t", "ethos-u55-128", "-o", str(out), "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "report.json").read_text())["npu"]["npu_cycles"] > 0


def test_small_graph_on_u55_report(tmp_path):
    b = QB(20)
    x = b.inp("x", (1, 3, 16, 16), 0.05, -20)
    y = b.conv(x, 8, (3, 3), 0.1, -20, stride=(2, 2), pads=(0, 0, 1, 1), act=(-20, 127))
    y = b.pool("QAvgPool", y, (8, 8))
    y = b.gemm(b.reshape(y, (1, 8)), 4, 0.2, 0)
    y = b.softmax(y)
    report = build(b.done(y), "ethos-u55-128", tmp_path)
    assert_all_compute_on_npu(report)
    npu = report["npu"]
    assert npu["accelerator"] == "Ethos_U55_128" and npu["core_clock_hz"] == 500e6
    assert abs(npu["inferences_per_second"] - npu["core_clock_hz"] / npu["total_cycles"]) \
        / npu["inferences_per_second"] < 0.05
    assert (tmp_path / "vela" / "model_vela.tflite").is_file()
    assert report["self_check"]["passed"]
    json.dumps(report)  # serializable as is


def test_cpu_fallbacks_name_op_and_reason(tmp_path):
    """A float-I/O export has QUANTIZE/DEQUANTIZE on float tensors: Vela leaves them on the
    CPU, and the report lists both with Vela's reason."""
    import subprocess
    b = QB(21)
    x = b.inp("x", (1, 3, 8, 8), 0.05, -20)
    y = b.conv(x, 4, (3, 3), 0.1, -20)
    data = export_tflite(b.done(y), float_io=True)
    (tmp_path / "m.tflite").write_bytes(data)
    res = subprocess.run(vela_command(tmp_path / "m.tflite", "ethos-u55-128", tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ops = {}
    for name in op_codes(data):
        ops[name] = ops.get(name, 0) + 1
    npu = parse_vela(res.stdout, next(tmp_path.glob("*_summary_*.csv")), ops)
    assert sorted(f["op"] for f in npu["cpu_fallbacks"]) == ["DEQUANTIZE", "QUANTIZE"]
    assert all(f["reason"] for f in npu["cpu_fallbacks"])
    assert npu["npu_share"] == pytest.approx(1 / 3)


def test_profile_and_flash_are_refused(tmp_path):
    t = get_target("ethos-u55-128")
    with pytest.raises(EdgeqError, match="not supported for this target"):
        t.profile(tmp_path, "host")
    with pytest.raises(EdgeqError, match="not supported for this target"):
        t.flash(tmp_path, "qemu")


def test_mlperf_fast_sww01_on_u55_128(tmp_path):
    report = build(model_qgraph("mlperf", "sww01"), "ethos-u55-128", tmp_path)
    assert_all_compute_on_npu(report)
    # run() executes the pre-Vela model (no NPU simulator) and says so
    t = get_target("ethos-u55-128")
    x = np.zeros((1, 1, 30, 1, 40), np.int8)[0]
    out = t.run(tmp_path, {"input": x})
    assert next(iter(out.values())).shape == (1, 3)
    assert "no Ethos-U simulator" in report["runner"]


@pytest.mark.slow
@pytest.mark.parametrize("accelerator", ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256"])
@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_models_all_compute_on_npu(name, accelerator, tmp_path):
    report = build(model_qgraph("mlperf", name), accelerator, tmp_path)
    assert_all_compute_on_npu(report)
