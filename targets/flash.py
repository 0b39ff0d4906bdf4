"""Putting a firmware ELF on a board: a real one through openocd / pyocd, or an emulated one
through QEMU's gdb stub.

probe "qemu": QEMU starts halted (-S) with a gdb server and no -kernel; gdb-multiarch
connects, `load`s the ELF into the board's flash/RAM, `compare-sections` verifies it,
`monitor system_reset` restarts the core from the loaded vector table (a `load` without
the reset leaves QEMU in a state that aborts), and detaches. The firmware then runs,
prints over semihosting and QEMU exits with its status, which is reported.

probe "openocd" / "pyocd": the exact command for the real part in the board table; with
dry_run it is only returned (and printed by the CLI).
"""
from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets import qemu
from edgeq.targets.c_project import require_tool

PROBES = ("qemu", "openocd", "pyocd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_command(elf: Path, port: int) -> list[str]:
    return ["gdb-multiarch", "-nx", "-batch", "-ex", f"target remote 127.0.0.1:{port}", "-ex", "load",
            "-ex", "compare-sections", "-ex", "monitor system_reset", "-ex", "detach", str(elf)]


def real_probe_command(elf: Path, board: dict, probe: str) -> list[str]:
    if probe == "openocd":
        if not board.get("openocd_board"):
            raise EdgeqError(f"no openocd board file is known for {board['part']}",
                             "use --probe pyocd, or --probe qemu for the emulated board")
        return ["openocd", "-f", board["openocd_board"], "-c", f"program {elf} verify reset exit"]
    if not board.get("pyocd_target"):
        raise EdgeqError(f"no pyocd target is known for {board['part']}",
                         "use --probe openocd, or --probe qemu for the emulated board")
    return ["pyocd", "flash", "-t", board["pyocd_target"], str(elf)]


def flash_firmware(elf: Path, board: dict, probe: str, dry_run: bool = False, timeout: float = 60) -> dict:
    if probe not in PROBES:
        raise EdgeqError(f"unknown probe {probe!r}", f"choose one of: {', '.join(PROBES)}")
    if not Path(elf).is_file():
        raise EdgeqError(f"{elf} does not exist", "compile for a cortex-m target first")
    if probe == "qemu":
        return _flash_qemu(Path(elf), board, dry_run, timeout)
    cmd = real_probe_command(Path(elf), board, probe)
    result = {"probe": probe, "part": board["part"], "command": shlex.join(cmd)}
    if dry_run:
        return result
    if probe == "openocd":
        require_tool("openocd", "openocd")  # not installed by `make setup`: the fix says apt-get
    elif shutil.which("pyocd") is None:
        raise EdgeqError("pyocd is not installed (Python package pyocd)",
                         f"{sys.executable} -m pip install pyocd, connect the board, retry")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 5)
    result.update(exit_status=res.returncode, output=(res.stdout + res.stderr).strip()[-2000:])
    if res.returncode != 0:
        raise EdgeqError(f"{probe} failed (status {res.returncode}): {result['output'][-500:]}",
                         "check the probe's USB connection and that the board is powered")
    return result


def _flash_qemu(elf: Path, board: dict, dry_run: bool, timeout: float) -> dict:
    port = free_port()
    qemu_cmd = qemu.base_command(board["machine"]) if not dry_run else [
        "qemu-system-arm", "-M", board["machine"], "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native"]
    qemu_cmd += ["-gdb", f"tcp:127.0.0.1:{port}", "-S"]
    gdb = gdb_command(elf, port)
    result = {"probe": "qemu", "machine": board["machine"],
              "command": shlex.join(qemu_cmd) + " &\n" + shlex.join(gdb)}
    if dry_run:
        return result
    require_tool("gdb-multiarch", "gdb-multiarch")
    board_proc = subprocess.Popen(qemu_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port, board_proc)
        g = subprocess.run(gdb, capture_output=True, text=True, timeout=timeout)
        out, err = board_proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgeqError("flashing the emulated board timed out", "retry; if it persists, report it") from None
    finally:
        if board_proc.poll() is None:
            board_proc.kill()
            board_proc.wait()
    gdb_out = g.stdout + g.stderr
    matched = gdb_out.count("matched.")
    mismatched = gdb_out.count("MIS-MATCHED")
    if g.returncode != 0 or "Loading section" not in gdb_out:
        raise EdgeqError(f"gdb-multiarch could not load the firmware: {gdb_out.strip()[-800:]}",
                         "this is an edgeq bug: please report it")
    result.update(exit_status=board_proc.returncode, verified=matched > 0 and mismatched == 0,
                  sections_matched=matched, firmware_output=out.strip()[-4000:])
    return result


def _wait_listening(port: int, proc: subprocess.Popen, limit: float = 10.0) -> None:
    """QEMU opens its gdb port at start-up; wait for it (checked without connecting, since a
    probe connection would be the stub's one client) by polling `ss`-free: try bind."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if proc.poll() is not None:
            raise EdgeqError(f"QEMU exited at start-up: {proc.stderr.read().strip()[-500:]}",
                             "check the board name and QEMU installation")
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return  # taken: QEMU is listening
        time.sleep(0.02)
    raise EdgeqError("QEMU did not open its gdb port", "retry; another process may hold the port")
