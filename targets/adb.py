"""Profiling an arm64 build on a phone over adb (`edgeq profile DIR --device adb[:SERIAL]`).

    1. `adb devices`: the phone (or the one with SERIAL) must be listed as "device";
    2. push DIR/model_arm64 into a fresh folder under /data/local/tmp;
    3. read each core's cpuinfo_max_freq and pin the run to the fastest cores (`taskset`:
       the big or prime cores; the binary is single-threaded);
    4. `model_arm64 --bench W R`: W warm-up and R timed inferences, one line per timed run;
    5. remove the folder. Nothing is pulled: the timings come back on stdout.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.targets import c_project as cp

DEVICE_DIR = "/data/local/tmp"
FREQ_FILES = "/sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq"
FREQ_LINE = re.compile(r"/cpu(\d+)/cpufreq/cpuinfo_max_freq:(\d+)\s*$")


class Adb:
    def __init__(self, serial: str | None):
        self.base = [cp.require_tool("adb", "adb")] + (["-s", serial] if serial else [])
        self.serial = serial

    def __call__(self, *args: str, timeout: float = 120, any_device: bool = False) -> str:
        cmd = [*self.base[:1], *args] if any_device else [*self.base, *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgeqError(f"`adb {' '.join(args[:2])}` did not finish within {timeout:.0f} s",
                             "check the phone's connection (`adb devices`) and retry") from None
        if res.returncode != 0:
            raise EdgeqError(f"`adb {' '.join(args)}` failed (status {res.returncode}): "
                             f"{(res.stderr or res.stdout).strip()[-300:]}",
                             "check the phone's connection (`adb devices`) and retry")
        return res.stdout

    def check_connected(self) -> None:
        lines = [l.split() for l in self("devices", timeout=30, any_device=True).splitlines()[1:] if l.strip()]
        ready = [l[0] for l in lines if len(l) > 1 and l[1] == "device"]
        if self.serial is None and len(ready) > 1:
            raise EdgeqError(f"{len(ready)} phones are connected ({', '.join(ready)})",
                             "choose one with --device adb:SERIAL")
        if not ready or (self.serial and self.serial not in ready):
            which = f" with serial {self.serial}" if self.serial else ""
            raise EdgeqError(f"no adb device{which} is connected",
                             "connect a phone with USB debugging enabled and authorised (check `adb devices`)")


def fastest_cores(adb: Adb) -> list[int]:
    """The cores with the highest maximum frequency (the prime or big cluster)."""
    text = adb("shell", f"grep -H . {FREQ_FILES}")
    freqs = {int(m.group(1)): int(m.group(2)) for m in map(FREQ_LINE.search, text.splitlines()) if m}
    if not freqs:
        raise EdgeqError("the phone reports no CPU frequencies (cpufreq), so the big cores are unknown",
                         "check `adb shell ls /sys/devices/system/cpu/cpu0/cpufreq`; this phone may hide them")
    return top_cores(freqs)


def top_cores(freqs: dict[int, int]) -> list[int]:
    """The cores whose maximum frequency is the highest."""
    top = max(freqs.values())
    return sorted(c for c, f in freqs.items() if f == top)


def timing_summary(text: str, info: dict, device: str, warmup: int, iterations: int) -> dict:
    """`model_arm64 --bench` output -> median and p90 per inference and per layer (us)."""
    runs = [[int(v) for v in line.split()[2:]] for line in text.splitlines() if line.startswith("time ")]
    n = info["num_layers"]
    if len(runs) != iterations or any(len(r) != n + 1 for r in runs):
        raise EdgeqError(f"the benchmark printed {len(runs)} of {iterations} timed runs",
                         "see the device's output; this is an edgeq bug if the binary ran")
    ns = np.asarray(runs, dtype=np.float64)

    def stats(col: np.ndarray) -> dict:
        return {"median_us": round(float(np.median(col)) / 1e3, 2),
                "p90_us": round(float(np.percentile(col, 90)) / 1e3, 2)}
    total = stats(ns[:, 0])
    layers = [{"name": name, **stats(ns[:, 1 + i])} for i, name in enumerate(info["layers"])]
    return {"device": device, "counter": "wall time (CLOCK_MONOTONIC) per inference and per layer",
            "warmup": warmup, "iterations": iterations, "latency_median_us": total["median_us"],
            "latency_p90_us": total["p90_us"], "layers": layers}


def profile_on_phone(exe: Path, info: dict, serial: str | None, warmup: int, iterations: int) -> dict:
    adb = Adb(serial)
    adb.check_connected()
    cores = fastest_cores(adb)
    mask = f"{sum(1 << c for c in cores):x}"
    # one folder per binary: two builds profiled at once do not overwrite each other
    folder = f"{DEVICE_DIR}/edgeq-{hashlib.sha256(exe.read_bytes()).hexdigest()[:12]}"
    remote = f"{folder}/{exe.name}"
    adb("shell", f"mkdir -p {folder}")
    try:
        adb("push", str(exe), remote, timeout=300)
        adb("shell", f"chmod 755 {remote}")
        out = adb("shell", f"taskset {mask} {remote} --bench {warmup} {iterations}", timeout=3600)
    finally:
        adb("shell", f"rm -rf {folder}")
    prof = timing_summary(out, info, f"adb:{serial}" if serial else "adb", warmup, iterations)
    prof.update(cores=cores, taskset_mask=mask)
    return prof
