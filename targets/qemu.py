"""Running firmware on QEMU's emulated Cortex-M boards (semihosting I/O, exit status).

    res = run_firmware("mps2-an500", "fw.elf")     # res.status, res.stdout
    res = run_firmware(..., plugin=so, plugin_args={"mark": "0x1234", "out": "counts.txt"})

The firmware prints over semihosting (stdout) and ends with a semihosting exit whose
status QEMU returns (startup.c: main's return value, 99 for a fault). A lockup makes
QEMU abort; a hang is cut by the timeout.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets.c_project import require_tool

FAULT_STATUS = 99


@dataclass
class QemuResult:
    status: int
    stdout: str
    stderr: str
    seconds: float


def qemu_binary() -> str:
    return require_tool("qemu-system-arm", "qemu-system-arm")


def base_command(machine: str) -> list[str]:
    return [qemu_binary(), "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native"]


def run_firmware(machine: str, elf: Path, timeout: float = 120, plugin: Path | None = None,
                 plugin_args: dict[str, str] | None = None, cwd: Path | None = None) -> QemuResult:
    cmd = base_command(machine)
    if plugin is not None:
        args = "".join(f",{k}={v}" for k, v in (plugin_args or {}).items())
        cmd += ["-plugin", f"{plugin}{args}"]
    cmd += ["-kernel", str(elf)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise EdgeqError(f"the firmware did not finish on QEMU {machine} within {timeout:.0f} s",
                         "a hang is an edgeq bug (or a huge batch): please report it") from None
    return QemuResult(res.returncode, res.stdout, res.stderr, time.perf_counter() - t0)


def check_status(res: QemuResult, machine: str, allow_mismatch: bool = True) -> None:
    """Turn a crash into a clear error; mismatch counts (1..98) are for the caller."""
    if res.status == FAULT_STATUS:
        raise EdgeqError(f"the firmware faulted on QEMU {machine} (exit status 99 from the fault handler)",
                         "this is an edgeq bug (or an ISA the board lacks): please report it")
    if res.status < 0 or res.status >= 128 or (res.status and not allow_mismatch):
        raise EdgeqError(f"QEMU {machine} exited with status {res.status}: {res.stderr.strip()[-500:]}",
                         "this is an edgeq bug: please report it")
