"""`--cpu host` and `--cpu adb[:SERIAL]`: build for the CPU of the machine that will run the binary.

Linux and Android list every core in /proc/cpuinfo with its implementer, part number and
features. The binary runs pinned to the fastest cores (`edgeq profile --device adb` pins
it there), so those cores decide: their part number names the core when it is one of
edgeq's CPUs (edgeq.lower_tvm.cpus) and its features agree; otherwise the features alone
choose the schedules (`i8mm` -> max, `asimddp` -> cortex-a76's, neither -> cortex-a53's).
Features win over the name because a kernel built for a missing feature dies with SIGILL.
"""
from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.lower_tvm.cpus import CPUS, Cpu
from edgeq.targets.adb import Adb, fastest_cores, top_cores

ARM = 0x41
# Arm's part numbers (MIDR_EL1.PartNum) of the cores edgeq names
ARM_PARTS = {0xd03: "cortex-a53", 0xd05: "cortex-a55", 0xd0b: "cortex-a76", 0xd41: "cortex-a78",
             0xd44: "cortex-x1", 0xd4e: "cortex-x3", 0xd49: "neoverse-n2"}
DETECT_SPECS = ("host", "adb")
LOCAL_FREQS = "/sys/devices/system/cpu/cpu{}/cpufreq/cpuinfo_max_freq"


def is_detect_spec(spec: str | None) -> bool:
    return spec is not None and (spec in DETECT_SPECS or spec.startswith("adb:"))


def parse_cpuinfo(text: str) -> dict[int, dict[str, str]]:
    """/proc/cpuinfo -> {processor number: {field: value}} (fields lower-cased)."""
    cores: dict[int, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            current = cores.setdefault(int(value), {})
        elif current is not None:
            current[key] = value
    return cores


def choose_cpu(cores: dict[int, dict[str, str]], fastest: list[int], where: str) -> tuple[Cpu, str]:
    """The edgeq CPU for the first of the fastest cores, and a line saying why."""
    picked = [c for c in fastest if c in cores] or sorted(cores)
    if not picked:
        raise EdgeqError(f"{where}'s /proc/cpuinfo lists no processors",
                         "name the CPU instead, e.g. --cpu cortex-a76 (edgeq targets lists them)")
    core = cores[picked[0]]
    features = set(core.get("features", "").split())
    dotprod, i8mm = "asimddp" in features, "i8mm" in features
    part = _hex(core.get("cpu part")) if _hex(core.get("cpu implementer")) == ARM else None
    named = CPUS.get(ARM_PARTS.get(part, ""))
    if named is not None and (named.dotprod, named.i8mm) == (dotprod, i8mm):
        cpu, why = named, f"CPU part {part:#x}"
    else:
        cpu = CPUS["max" if i8mm else "cortex-a76" if dotprod else "cortex-a53"]
        why = f"CPU part {part:#x} is not one edgeq names; " if part is not None and named is None else ""
        why += f"features {'+'.join(n for n, has in (('dotprod', dotprod), ('i8mm', i8mm)) if has) or 'NEON only'}"
    cores_txt = ",".join(map(str, picked))
    return cpu, f"{where}, core{'s' if len(picked) > 1 else ''} {cores_txt}: {cpu.name} ({why})"


@functools.lru_cache(maxsize=None)
def detect_cpu(spec: str) -> tuple[Cpu, str]:
    """--cpu host | adb | adb:SERIAL -> (Cpu, how it was found). Cached: the options check
    and the build ask once each, and must agree."""
    if spec == "host":
        return _detect_host()
    serial = spec.split(":", 1)[1] if ":" in spec else None
    adb = Adb(serial)
    adb.check_connected()
    text = adb("shell", "cat /proc/cpuinfo")
    return choose_cpu(parse_cpuinfo(text), fastest_cores(adb), f"adb:{serial}" if serial else "adb")


def _detect_host() -> tuple[Cpu, str]:
    machine = platform.machine()
    if machine not in ("aarch64", "arm64"):
        raise EdgeqError(f"--cpu host reads this machine's CPU, but it is {machine}, not aarch64",
                         "name the CPU the binary will run on (e.g. --cpu cortex-a76) or read a "
                         "phone's with --cpu adb[:SERIAL]")
    cores = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    freqs = {c: f for c in cores if (f := _read_int(Path(LOCAL_FREQS.format(c)))) is not None}
    fastest = top_cores(freqs) if freqs else sorted(cores)   # no cpufreq (a VM, a container): every core
    return choose_cpu(cores, fastest, "this machine")


def _hex(value: str | None) -> int | None:
    return int(value, 16) if value and re.fullmatch(r"0x[0-9a-fA-F]+", value) else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
