"""Firmware on QEMU's Cortex-M boards equals the integer reference, byte for byte.

Fast set: the hand-built graphs on cortex-m7, one graph on each other board, the budget
failure, the self-check failure, the report's memory numbers and repeatable instruction
counts. Slow set: every models/ network and every MLPerf Tiny model (calibrated on real
data) on the host and on every board.
"""
from __future__ import annotations

import shutil
from functools import lru_cache

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.codegen import plan_build
from edgeq.options import BuildOptions
from edgeq.targets import get_target

from .conftest import MLPERF_MODELS
from .test_codegen_host import G, check_target, qgraph_all_ops, qgraph_conv, qgraph_ops

BOARDS = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]

needs_tools = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")


def test_missing_toolchain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EdgeqError) as e:
        get_target("cortex-m7").build(qgraph_conv(), tmp_path, {})
    assert "arm-none-eabi-gcc is not installed" in e.value.cause and "gcc-arm-none-eabi" in e.value.cause
    assert "make setup" in e.value.fix
    from edgeq.targets import qemu
    with pytest.raises(EdgeqError, match="qemu-system-arm is not installed"):
        qemu.base_command("mps2-an500")


@needs_tools
def test_cortex_m7_conv_end_to_end(tmp_path):
    rep = check_target(get_target("cortex-m7"), qgraph_conv(), tmp_path)
    assert rep["self_check"] == {"vectors": 2, "mismatches": 0, "errors": 0, "exit_status": 0, "passed": True,
                                 "firmware": "fw.elf"}
    # memory numbers: flash from the ELF, SRAM = static data (incl. arena) + painted stack peak
    assert 0 < rep["arena_bytes"] < rep["static_ram_bytes"] < rep["sram_bytes"]
    assert 64 < rep["stack_bytes"] < rep["stack_reserve_bytes"]
    assert rep["sram_bytes"] == rep["static_ram_bytes"] + rep["stack_bytes"]
    assert 1000 < rep["flash_bytes"] < 64 * 1024
    assert rep["test_vector_bytes"] == 2 * 192 + 2 * 5  # inputs and expected outputs, not counted
    assert rep["firmware_flash_bytes"] == rep["flash_bytes"] + rep["test_vector_bytes"]
    assert rep["board"]["part"].startswith("STM32F746")
    # the memory timeline: data and its plot beside report.json
    assert rep["memory_plan"]["plot"] == "memory_timeline.png"
    assert (tmp_path / "memory_timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert max(rep["memory_plan"]["timeline"]) <= rep["arena_bytes"]
    assert isinstance(rep["memory_plan"]["direct"], list)


@needs_tools
@pytest.mark.parametrize("board", BOARDS)
def test_every_board_runs_ops(board, tmp_path):
    check_target(get_target(board), qgraph_ops(), tmp_path, n=2)


def assert_integer_only_c(src) -> None:
    """The generated model sources hold no float type, no division or modulo, no heap."""
    import re
    from .test_c_runtime_portability import _strip_c
    for name in ("model.c", "model.h"):
        code = _strip_c((src / name).read_text())
        for what, pattern in {"float/double": r"\b(float|double)\b", "heap": r"\b(malloc|calloc|realloc|free|alloca)\b",
                              "division": r"/", "modulo": r"%"}.items():
            m = re.search(pattern, code)
            assert m is None, f"{name}: {what}: ...{code[max(0, m.start() - 40):m.end() + 20]}..."


@needs_tools
@pytest.mark.parametrize("board", BOARDS)
def test_every_board_runs_every_op(board, tmp_path):
    """All per-op graphs (depthwise, dilation, 1-D, broadcasting, softmax, concat, ...) in one
    firmware with 23 inputs and 22 outputs."""
    check_target(get_target(board), qgraph_all_ops(), tmp_path, n=2)
    assert_integer_only_c(tmp_path / "src")


@needs_tools
def test_run_batch_spans_several_firmwares(tmp_path, monkeypatch):
    """A batch larger than one embedded chunk is split; outputs keep their order."""
    import edgeq.targets.mcu as mcu
    monkeypatch.setattr(mcu, "RUN_CHUNK_BYTES", 400)  # 2 inputs of 192 bytes per firmware
    check_target(get_target("cortex-m7"), qgraph_conv(), tmp_path, n=5)


@needs_tools
def test_model_too_big_for_the_part(tmp_path):
    """A 1x16x96x96 input (147 KB) cannot fit the STM32F446's 128 KB SRAM."""
    b = G("big")
    x = b.x((1, 16, 96, 96))
    g = b.done(b.conv(x, 4, k=1, pads=(0, 0, 0, 0)))
    with pytest.raises(EdgeqError) as e:
        get_target("cortex-m4").build(g, tmp_path, {})
    msg = str(e.value)
    assert "does not fit STM32F446RE" in msg and "RAM overflowed by" in msg and "bytes" in msg


@needs_tools
def test_vectors_that_do_not_fit_move_to_a_check_firmware(tmp_path):
    """The model fits the flash budget but its test vectors do not: fw.elf ships without
    them and the self-check runs on a firmware linked with the emulated board's flash."""
    from .test_codegen_host import rand_feeds
    t = get_target("cortex-m7")
    g = qgraph_conv()
    rep = {}
    t.build(g, tmp_path, rep)
    small = t.with_budget(flash_bytes=rep["flash_bytes"] + 4096)
    rep = {}
    small.build(g, tmp_path / "b", rep, rand_feeds(g, 40))  # 40 * 192 bytes > 4 KB spare
    assert rep["test_vector_bytes"] == 0
    assert rep["self_check"]["passed"] and rep["self_check"]["firmware"] == "fw_check.elf"
    assert rep["self_check"]["vectors"] == 40


@needs_tools
def test_check_firmware_keeps_the_vectors_that_fit_a_board_without_spare_flash(tmp_path):
    """The emulated board's flash is the part's own (the Cortex-M55's ITCM): the check
    firmware embeds as many of the test vectors as fit (ic01_large's packed MVE weights
    leave no room for four), instead of failing the build."""
    from edgeq.targets.mcu import MCUTarget, load_boards
    from .test_codegen_host import rand_feeds
    g = qgraph_conv()
    rep = {}
    get_target("cortex-m7").build(g, tmp_path, rep)
    spare = rep["flash_bytes"] + 2048
    t = MCUTarget("cortex-m7", load_boards()["cortex-m7"], {"flash_bytes": spare, "qemu_flash_bytes": spare + 2048})
    rep = {}
    t.build(g, tmp_path / "b", rep, rand_feeds(g, 40))  # 40 * 192 bytes > 4 KB spare
    assert rep["self_check"]["passed"] and rep["self_check"]["firmware"] == "fw_check.elf"
    assert 1 <= rep["self_check"]["vectors"] < 40


def _corrupt_expected(monkeypatch):
    """Test hook: the integer reference's expected outputs, with one byte flipped, become
    the firmware's embedded vectors (as if the generated C disagreed with the reference)."""
    from edgeq.targets import c_project
    real = c_project.reference_expected

    def corrupted(qgraph, vectors):
        exp = dict(real(qgraph, vectors))
        name = qgraph.outputs[0]
        bad = exp[name].copy()
        bad.flat[0] ^= 1
        exp[name] = bad
        return exp
    monkeypatch.setattr(c_project, "reference_expected", corrupted)


@needs_tools
def test_self_check_mismatch_fails_the_build(tmp_path, monkeypatch):
    """A firmware whose outputs differ from the embedded expected vectors is not a build."""
    from .test_codegen_host import rand_feeds
    _corrupt_expected(monkeypatch)
    g = qgraph_conv()
    rep = {}
    with pytest.raises(EdgeqError) as e:
        get_target("cortex-m7").build(g, tmp_path, rep, rand_feeds(g, 3))
    msg = str(e.value)
    assert "self-check failed on QEMU mps2-an500" in msg and f"vector 0 output {g.outputs[0]!r}" in msg, msg
    assert "1 output(s) differ" in msg and "over 3 embedded test vector(s)" in msg
    assert "edgeq bug" in e.value.fix
    assert rep["self_check"]["mismatches"] == 1 and rep["self_check"]["exit_status"] == 1
    assert not rep["self_check"]["passed"]


def test_self_check_mismatch_fails_the_host_build(tmp_path, monkeypatch):
    """The host target embeds the same vectors: a mismatch there is an error too."""
    from .test_codegen_host import rand_feeds
    _corrupt_expected(monkeypatch)
    g = qgraph_conv()
    rep = {}
    with pytest.raises(EdgeqError) as e:
        get_target("host").build(g, tmp_path, rep, rand_feeds(g, 2))
    assert "self-check failed on this machine" in str(e.value) and "1 output(s) differ" in str(e.value)
    assert not rep["self_check"]["passed"]


@needs_tools
def test_self_check_mismatch_fails_edgeq_compile(tmp_path, monkeypatch, capsys):
    """`edgeq compile --target cortex-m7`: one clear error line, exit 1, no output folder."""
    from edgeq import cli
    from .test_cli_errors import conv_model
    _corrupt_expected(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", str(conv_model(tmp_path / "m.onnx")), "--target", "cortex-m7", "-o", str(out)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "self-check failed on QEMU mps2-an500" in err and "Traceback" not in err
    assert not out.exists()


@needs_tools
def test_stack_reserve_exhaustion_is_detected(tmp_path):
    """The painted stack shows a reserve that was used to the bottom (the heap reserve
    below it absorbs the overflow, so the run itself survives)."""
    t = get_target("cortex-m7").with_budget(stack_bytes=128)
    with pytest.raises(EdgeqError, match="whole 128-byte stack reserve"):
        t.build(qgraph_conv(), tmp_path, {})


@needs_tools
def test_flash_budget_override(tmp_path):
    t = get_target("cortex-m7").with_budget(flash_bytes=4096)
    with pytest.raises(EdgeqError, match=r"FLASH overflowed by [\d,]+ bytes"):
        t.build(qgraph_conv(), tmp_path, {})


@needs_tools
def test_profile_counts_are_exact_and_repeatable(tmp_path):
    t = get_target("cortex-m7")
    g = qgraph_ops()
    t.build(g, tmp_path, {})
    p1, p2 = t.profile(tmp_path, "qemu"), t.profile(tmp_path, "qemu")
    assert p1["instructions"] == p2["instructions"] > 0
    assert [l["instructions"] for l in p1["layers"]] == [l["instructions"] for l in p2["layers"]]
    # the firmware's layers: the graph lowered for its channels-last kernels, i.e. the
    # model's own nodes in order plus the transposes between layouts
    lowered = plan_build(g, t.kernels).graph.nodes
    assert [l["name"] for l in p1["layers"]] == [n.name for n in lowered]
    assert [n.name for n in lowered if n.name in {m.name for m in g.nodes}] == [n.name for n in g.nodes]
    assert all(n.op == "QTranspose" for n in lowered if n.name not in {m.name for m in g.nodes})
    assert sum(l["instructions"] for l in p1["layers"]) == p1["instructions"]
    assert "not cycles" in p1["counter"]
    with pytest.raises(EdgeqError):
        t.profile(tmp_path, "adb")
    with pytest.raises(EdgeqError, match="DSP kernels, which do not run on this machine"):
        t.profile(tmp_path, "host")  # model.c calls the Cortex-M DSP variants
    from .test_codegen_host import rand_feeds
    m0 = tmp_path / "portable"
    get_target("host").build(g, m0, {}, rand_feeds(g, 1))
    host = get_target("host").profile(m0, "host")  # the portable C timed on this machine
    assert host["device"] == "host" and host["wall_time_s"] > 0 and "instructions" not in host


@needs_tools
def test_edgeq_profile_writes_per_layer_counts_to_the_report(tmp_path):
    """`edgeq profile DIR --device qemu` (runner.profile_build): report.json gains the
    instructions per inference and the profile with one exact count per layer."""
    import json
    import subprocess
    import sys
    from .test_cli_errors import conv_model
    out = tmp_path / "build"
    cmd = [sys.executable, "-m", "edgeq.cli"]
    c = subprocess.run([*cmd, "compile", str(conv_model(tmp_path / "m.onnx")), "--target", "cortex-m7",
                        "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert c.returncode == 0, c.stderr
    p = subprocess.run([*cmd, "profile", str(out), "--device", "qemu"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "report.json").read_text())
    prof = rep["profile"]
    assert rep["instructions"] == prof["instructions"] == sum(l["instructions"] for l in prof["layers"]) > 0
    # the firmware's layers: the model's, plus the transpose back to the model's NCHW output
    assert rep["relayouts"] == ["y/to_nchw"]
    assert [l["name"] for l in prof["layers"]] == [l["name"] for l in rep["layers"]] + rep["relayouts"]
    assert "not cycles" in prof["counter"] and "instructions per inference" in p.stdout
    assert rep["memory_plan"]["plot"] == "memory_timeline.png" and (out / "memory_timeline.png").is_file()


@needs_tools
def test_fault_exits_99(tmp_path):
    """A fault in the firmware ends QEMU with status 99 (startup.c's fault handler)."""
    from edgeq.targets import qemu
    t = get_target("cortex-m7")
    t.build(qgraph_conv(), tmp_path, {})
    src = tmp_path / "src" / "main.c"
    src.write_text(src.read_text().replace("initialise_monitor_handles();",
                                           "initialise_monitor_handles();\n    __asm__ volatile(\"udf #0\");"))
    t._compile(t.board, src, tmp_path / "obj" / "main.o")
    t._link(t.board, tmp_path, tmp_path / "src" / "link.ld", ["model", "main", "startup", "vectors"],
            tmp_path / "bad.elf")
    res = qemu.run_firmware("mps2-an500", tmp_path / "bad.elf", timeout=30)
    assert res.status == qemu.FAULT_STATUS
    with pytest.raises(EdgeqError, match="faulted"):
        qemu.check_status(res, "mps2-an500")


# ---- real models (slow) ------------------------------------------------------------------------

FMNIST_MODELS = ["dscnn", "mobilenetv2", "resnet8"]
MODEL_CASES = [("fmnist", m) for m in FMNIST_MODELS] + [("mlperf", m) for m in MLPERF_MODELS]


@lru_cache(maxsize=None)
def _real_model(kind: str, name: str):
    """(quantized graph, 4 int8 inputs): calibrated on 32 real samples, checked on 4 others."""
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.driver.pipeline import CompileOptions, compile_model
    if kind == "mlperf":
        from edgeq.models.mlperf_inputs import mlperf_inputs
        from tests.conftest import mlperf_model
        path = mlperf_model(name)
        calib, held_out = mlperf_inputs(name, "calib", n=32), mlperf_inputs(name, "eval", n=4)
    else:
        from edgeq.models.fmnist import available, load_fmnist, preprocess
        from edgeq.models.registry import REFERENCE_MODELS
        path = REFERENCE_MODELS[name]
        if not available():
            pytest.skip("Fashion-MNIST data is absent")
        calib, held_out = preprocess(load_fmnist("train")[0][:32]), preprocess(load_fmnist("test")[0][:4])
    q = compile_model(str(path), CompileOptions(progress=False, calib_limit=32), None, calib=calib,
                      log=lambda s: None).qgraph
    return q, quantize_inputs(q, {q.inputs[0]: held_out})


@needs_tools
@pytest.mark.slow
@pytest.mark.parametrize("target", ["host"] + BOARDS)
@pytest.mark.parametrize("kind,name", MODEL_CASES)
def test_real_model_bit_exact(kind, name, target, tmp_path):
    """Every models/ network and every MLPerf Tiny model, on the host and on each board: the
    self-check and a run of 4 held-out real inputs equal the integer reference exactly. A
    model larger than the board's real part is checked on the emulated board's memory (the
    same ISA), after the part's budget has refused it with a clear message."""
    from edgeq.reference.interpreter import run_reference
    g, feeds = _real_model(kind, name)
    t = get_target(target)
    rep = {}
    try:
        t.build(g, tmp_path, rep, {k: v[:2] for k, v in feeds.items()})
    except EdgeqError as e:
        if target == "host" or "does not fit" not in str(e):
            raise
        assert "overflowed by" in str(e)
        b = t.board
        t = t.with_budget(flash_bytes=b["qemu_flash_bytes"], ram_bytes=b["qemu_ram_bytes"])
        tmp_path = tmp_path / "emulated"
        t.build(g, tmp_path, rep, {k: v[:2] for k, v in feeds.items()})
    # where the emulated flash is the part's own (the M55's 512 KB ITCM), a model that nearly
    # fills it self-checks as many vectors as still fit (ic01_large: 1); the 4 runs below check all
    own_flash = target != "host" and t.board["qemu_flash_bytes"] <= t.board["flash_bytes"]
    n_check = rep["self_check"]["vectors"]
    assert rep["self_check"]["passed"] and (n_check == 2 or (own_flash and n_check == 1)), rep["self_check"]
    assert_integer_only_c(tmp_path / "src")
    got, want = t.run(tmp_path, feeds), run_reference(g, feeds)
    for out in g.outputs:
        assert np.array_equal(got[out], want[out]), out


# One real model per board in the default run (the full grid above is slow): a different
# MLPerf Tiny model on each, or a Fashion-MNIST net when ../shared is absent.
BOARD_MODELS = {"cortex-m4": ("kws01", "dscnn"), "cortex-m7": ("ic01", "resnet8"),
                "cortex-m33": ("sww01", "dscnn"), "cortex-m55": ("ad01", "mobilenetv2")}


@needs_tools
@pytest.mark.parametrize("board", BOARDS)
def test_a_real_model_on_each_board_bit_exact(board, tmp_path):
    """The firmware's self-check (2 calibration inputs) and 4 held-out real inputs run on
    the emulated board equal the integer reference exactly."""
    from edgeq.reference.interpreter import run_reference
    from tests.conftest import MLPERF
    mlperf, fmnist = BOARD_MODELS[board]
    g, feeds = _real_model("mlperf", mlperf) if (MLPERF / mlperf / "model.onnx").is_file() \
        else _real_model("fmnist", fmnist)
    t, rep = get_target(board), {}
    t.build(g, tmp_path, rep, {k: v[:2] for k, v in feeds.items()})
    assert rep["self_check"]["passed"] and rep["self_check"]["vectors"] == 2, rep["self_check"]
    got, want = t.run(tmp_path, feeds), run_reference(g, feeds)
    for out in g.outputs:
        assert np.array_equal(got[out], want[out]), out


@needs_tools
@pytest.mark.parametrize("board", ["cortex-m4", "cortex-m55"])
def test_machine_code_is_integer_only(board, tmp_path):
    """The model's and kernels' instructions hold no division and no floating point."""
    import re
    import subprocess
    from edgeq.targets.mcu import runtime_library
    t = get_target(board)
    t.build(qgraph_ops(), tmp_path, {})
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / "obj" / "model.o"),
                          str(runtime_library(t.board["cpu_flags"]))], capture_output=True, text=True).stdout
    assert "<eq_conv2d_s8>" in dis
    bad = re.findall(r"\t(sdiv|udiv|vdiv\S*|vcvt\S*|v\w+\.f(?:16|32|64))\s", dis)
    assert not bad, bad[:5]


@needs_tools
def test_budget_from_the_build_options(tmp_path):
    """BuildOptions.budget (what a measurement build or a budget option gives) overrides the part."""
    with pytest.raises(EdgeqError, match=r"RAM overflowed by [\d,]+ bytes \(budget 4,096\)"):
        get_target("cortex-m7").build(qgraph_conv(), tmp_path, {},
                                      BuildOptions(budget={"ram_bytes": 4096, "flash_bytes": None}))
