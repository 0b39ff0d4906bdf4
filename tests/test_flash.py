"""`flash`: the emulated path end to end (QEMU gdb stub + gdb-multiarch load), the real
probes' exact commands (dry run) and clear errors when a probe or its tool is missing."""
from __future__ import annotations

import shutil

import pytest

from edgeq.errors import EdgeqError
from edgeq.targets import get_target

from .test_codegen_host import qgraph_conv

needs_qemu = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm", "gdb-multiarch")),
    reason="arm-none-eabi-gcc / qemu-system-arm / gdb-multiarch missing (make setup)")


@pytest.fixture(scope="module")
def m7_build(tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc missing")
    out = tmp_path_factory.mktemp("m7")
    get_target("cortex-m7").build(qgraph_conv(), out, {}, None)
    return out


@needs_qemu
@pytest.mark.qemu
def test_flash_qemu_end_to_end(m7_build):
    res = get_target("cortex-m7").flash(m7_build, "qemu")
    assert res["exit_status"] == 0
    assert res["verified"] and res["sections_matched"] >= 2
    assert "stack" in res["firmware_output"]


@needs_qemu
@pytest.mark.qemu
def test_flash_qemu_secure_alias_board(tmp_path):
    """The M33 board loads at 0x10000000 / 0x38000000 (secure aliases): load + reset work
    there too, and the self-checking firmware reports 0 mismatches."""
    from .test_codegen_host import rand_feeds
    g = qgraph_conv()
    t = get_target("cortex-m33")
    t.build(g, tmp_path, {}, rand_feeds(g, 2))
    res = t.flash(tmp_path, "qemu")
    assert res["exit_status"] == 0 and res["verified"]
    assert res["firmware_output"].count("out ") == 2


def test_real_probe_commands(m7_build):
    t = get_target("cortex-m7")
    oc = t.flash(m7_build, "openocd", dry_run=True)["command"]
    assert oc.startswith("openocd -f board/stm32f7discovery.cfg -c 'program ") and "verify reset exit" in oc
    py = t.flash(m7_build, "pyocd", dry_run=True)["command"]
    assert py.startswith("pyocd flash -t stm32f746") and py.endswith("fw.elf")
    assert "-gdb tcp:127.0.0.1:" in t.flash(m7_build, "qemu", dry_run=True)["command"]


def test_missing_tool_or_probe(m7_build, monkeypatch):
    t = get_target("cortex-m7")
    with pytest.raises(EdgeqError, match="unknown probe"):
        t.flash(m7_build, "jlink")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EdgeqError, match="openocd is not installed"):
        t.flash(m7_build, "openocd")
    with pytest.raises(EdgeqError, match="pyocd is not installed"):
        t.flash(m7_build, "pyocd")


def test_m55_has_no_openocd_board(m7_build):
    from edgeq.targets.flash import real_probe_command
    from edgeq.targets.mcu import load_boards
    with pytest.raises(EdgeqError, match="no openocd board"):
        real_probe_command(m7_build / "fw.elf", load_boards()["cortex-m55"], "openocd")


@needs_qemu
@pytest.mark.qemu
def test_edgeq_flash_cli_end_to_end(tmp_path):
    """`edgeq compile --target cortex-m7` then `edgeq flash DIR --probe qemu`, as a user runs
    them: gdb-multiarch loads and verifies the ELF, the self-checking firmware runs, exit 0."""
    import subprocess
    import sys
    from .test_cli_errors import conv_model
    out = tmp_path / "build"
    cmd = [sys.executable, "-m", "edgeq.cli"]
    c = subprocess.run([*cmd, "compile", str(conv_model(tmp_path / "m.onnx")), "--target", "cortex-m7",
                        "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert c.returncode == 0, c.stderr
    f = subprocess.run([*cmd, "flash", str(out), "--probe", "qemu"], capture_output=True, text=True, timeout=300)
    assert f.returncode == 0, f.stdout + f.stderr
    assert "verified: True" in f.stdout and "exit_status: 0" in f.stdout
    assert "out 0 0 " in f.stdout  # the firmware's own output, relayed from the board


@needs_qemu
@pytest.mark.qemu
def test_flashed_firmware_that_fails_its_self_check(tmp_path, capsys):
    """The flash path checks the run: a firmware whose embedded expected output is wrong
    loads and verifies, but its exit status (1 mismatch) makes `edgeq flash` fail with
    exit 3 (check mismatch) and one line."""
    import re
    import subprocess
    import sys
    from rich.console import Console
    from edgeq.errors import CheckMismatch
    from edgeq.driver.runner import flash_build
    from edgeq.driver.pipeline import CompileOptions, compile_model
    from .test_cli_errors import conv_model
    out = tmp_path / "build"
    compile_model(str(conv_model(tmp_path / "m.onnx")), CompileOptions(target="cortex-m7", progress=False),
                  out, log=lambda s: None)
    t = get_target("cortex-m7")
    vec = out / "src" / "vectors.c"
    text = vec.read_text()
    m = re.search(r"vec_expected0\[\d+\][^{]*\{\s*(-?\d+)", text)
    assert m, text[:500]
    bad = str(int(m.group(1)) ^ 1)
    vec.write_text(text[:m.start(1)] + bad + text[m.end(1):])
    t._compile(t.board, vec, out / "obj" / "vectors.o")
    t._link(t.board, out, out / "src" / "link.ld", ["model", "main", "startup", "vectors"], out / "fw.elf")
    res = t.flash(out, "qemu")
    assert res["verified"] and res["exit_status"] == 1
    assert "mismatch 0 0" in res["firmware_output"]
    with pytest.raises(CheckMismatch, match="self-check failed: 1 output"):
        flash_build(out, "qemu", False, Console(file=None, force_terminal=False))
    f = subprocess.run([sys.executable, "-m", "edgeq.cli", "flash", str(out), "--probe", "qemu"],
                       capture_output=True, text=True, timeout=300)
    assert f.returncode == 3, f.stdout + f.stderr
    assert f.stderr.startswith("error: the flashed firmware's self-check failed") and "Traceback" not in f.stderr
