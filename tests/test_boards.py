"""--board: real parts with their memories, each built for its core's cortex-m target and
self-checked on that target's QEMU board; --flash-size/--sram-size override a part's
memory; a model too big for the part is told which catalogue parts it would fit."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.options import CompileOptions
from edgeq.targets.parts import fitting_parts, load_parts
from edgeq.driver.pipeline import compile_model

from .test_cli_errors import assert_clean_failure, conv_model, edgeq
from .test_fit_and_hints import gemm_model, no_late_work  # noqa: F401  (a fixture)

needs_tools = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                 reason="the Arm toolchain or QEMU is missing")
PARTS = load_parts()


def test_the_catalogue_has_the_parts_users_deploy():
    want = {"stm32f746": ("cortex-m7", 1 << 20, 320 << 10), "stm32h743": ("cortex-m7", 2 << 20, 512 << 10),
            "nrf52840": ("cortex-m4", 1 << 20, 256 << 10), "rp2350": ("cortex-m33", 4 << 20, 520 << 10)}
    for name, (target, flash, ram) in want.items():
        p = PARTS[name]
        assert (p["target"], p["flash_bytes"], p["ram_bytes"]) == (target, flash, ram), name
    assert any(p["target"] == "cortex-m55" and "Alif" in p["part"] for p in PARTS.values())
    assert all(p["checked"] for p in PARTS.values())  # each says where its numbers come from


@needs_tools
@pytest.mark.parametrize("board", ["stm32h743", "alif-e7-hp", pytest.param("nrf52840", marks=pytest.mark.slow),
                                   pytest.param("rp2350", marks=pytest.mark.slow)])
def test_a_board_builds_for_its_core_and_links_against_its_memory(board, tmp_path):
    out = tmp_path / "out"
    proc = edgeq("compile", conv_model(tmp_path / "m.onnx"), "-o", out, "--board", board, "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    part = PARTS[board]
    assert report["target"] == part["target"]
    assert report["board"]["part"] == part["part"]
    assert (report["board"]["flash_bytes"], report["board"]["ram_bytes"]) == (part["flash_bytes"], part["ram_bytes"])
    assert report["self_check"]["passed"]  # ran on the QEMU board of the part's core


@needs_tools
def test_memory_overrides_take_units(tmp_path):
    out = tmp_path / "out"
    proc = edgeq("compile", conv_model(tmp_path / "m.onnx"), "-o", out, "--board", "stm32h743",
                 "--flash-size", "1.5M", "--sram-size", "96K", "-q")
    assert proc.returncode == 0, proc.stderr
    board = json.loads((out / "report.json").read_text())["board"]
    assert (board["flash_bytes"], board["ram_bytes"]) == (1536 << 10, 96 << 10)


@pytest.mark.parametrize("args,needle", [
    (["--board", "stm32f999"], "unknown board 'stm32f999' (fix: choose one of: stm32f746, stm32h743"),
    (["--board", "nrf52840", "--target", "cortex-m7"], "--board nrf52840 is a cortex-m4 part, but --target is cortex-m7"),
    (["--flash-size", "1M"], "--flash-size/--sram-size set a part's memory, and target reference builds for no part"),
    (["--target", "cortex-m7", "--sram-size", "lots"], "cannot read --sram-size 'lots'"),
])
def test_bad_board_options_are_one_line(args, needle, tmp_path):
    out = tmp_path / "out"
    assert_clean_failure(edgeq("compile", conv_model(tmp_path / "m.onnx"), "-o", out, *args), needle)
    assert not out.exists()


def test_too_big_names_the_parts_it_would_fit(tmp_path, no_late_work):  # noqa: F811
    """1.1 MB of weights: not the STM32F746 (1 MB) but the H743 (2 MB), the Pico 2 (4 MB)
    and the Alif E7 (5.5 MB)."""
    model = gemm_model(tmp_path / "big.onnx", 1100, 1000)
    calib = np.random.default_rng(1).normal(size=(8, 1100)).astype(np.float32)
    with pytest.raises(EdgeqError) as e:
        compile_model(str(model), CompileOptions(board="stm32f746", progress=False), tmp_path / "out", calib,
                      log=lambda s: None)
    fix = e.value.fix
    assert "does not fit STM32F746NG (cortex-m7)" in e.value.cause
    assert fix.startswith("it would fit STM32H743ZI (--board stm32h743), RP2350A (--board rp2350), "
                          "Alif Ensemble E7 (--board alif-e7-hp)"), fix
    assert "nrf52840" not in fix and "stm32f746" not in fix


def test_no_fitting_part_is_said_plainly():
    assert fitting_parts(1 << 30, 0).startswith("no part in edgeq's --board catalogue has that much memory")


def test_link_overflow_names_parts_with_the_memory_it_needed():
    from edgeq.targets import get_target
    t = get_target("cortex-m4")  # 128 KB of SRAM + 70,000 bytes: the nRF52840's 256 KB would do
    err = t._overflow_error("region `RAM' overflowed by 70000 bytes", t.board, Path("/nonexistent"))
    assert "nRF52840 (--board nrf52840)" in err.fix and "STM32F746NG (--board stm32f746)" in err.fix


def test_targets_lists_the_boards():
    proc = edgeq("targets")
    assert proc.returncode == 0, proc.stderr
    for name, p in PARTS.items():
        assert name in proc.stdout and p["part"].split(" (")[0] in proc.stdout


@needs_tools
def test_a_firmware_larger_than_the_emulated_board_is_built_not_run(tmp_path):
    """600 KB of weights fit the Alif E7's 5.5 MB but not the 512 KB of QEMU's AN547: the
    firmware is linked for the part and the report says it was not run (no self-check)."""
    model = gemm_model(tmp_path / "big.onnx", 600, 1000)
    res = compile_model(str(model), CompileOptions(board="alif-e7-hp", progress=False), tmp_path / "out",
                        log=lambda s: None)
    assert res.report["flash_bytes"] > 512 << 10 and (tmp_path / "out" / "fw.elf").is_file()
    assert "self_check" not in res.report
    assert any("exceed the 524,288 of QEMU's mps3-an547: the firmware was built but not run" in n
               for n in res.report["notices"]), res.report["notices"]


def test_parts_named_have_room_for_both_memories():
    """3 MB of flash and 600 KB of SRAM: the Pico 2 has the flash but not the SRAM."""
    fix = fitting_parts(3_000_000, 600_000)
    assert fix.startswith("it would fit Alif Ensemble E7 (--board alif-e7-hp) (") and "rp2350" not in fix
