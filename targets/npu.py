"""Targets `ethos-u55-*`, `ethos-u65-*`, `ethos-u85-*`: the int8 .tflite compiled by Vela.

build: the same model.tflite as the `tflite` target (exported from the quantized graph
every target shares, and checked bit for bit in LiteRT and TFLite Micro), then Arm's Vela compiler (ethos-u-vela, CLI) with an
explicit configuration from the vela.ini shipped inside the ethos-u-vela package:

| NPU family | system config (Arm/vela.ini) | memory mode | what it models |
|---|---|---|---|
| Ethos-U55 | Ethos_U55_High_End_Embedded | Shared_Sram | Corstone-300-like: NPU at 500 MHz, arena in SRAM, weights in off-chip flash |
| Ethos-U65 | Ethos_U65_High_End | Dedicated_Sram_384KB | NPU at 1 GHz, model in DRAM, 384 KB SRAM as the NPU's cache |
| Ethos-U85 | Ethos_U85_SYS_DRAM_Mid | Dedicated_Sram_384KB | same, U85 |

Vela writes DIR/vela/model_vela.tflite (one `ethos-u` custom op per NPU subgraph, CPU ops
left as TFLite ops) and a summary CSV; report.json["npu"] gets its NPU cycles, the
inferences per second at the configured clock, SRAM / flash / DRAM use, the share of
operators on the NPU and every operator that falls back to the CPU with Vela's reason.
Cycles are Vela's performance estimate, not a measurement.

run: no Ethos-U simulator is available here, so `run` executes DIR/model.tflite (the
network Vela compiled) with LiteRT's reference kernels and says so in report["runner"];
the NPU's own arithmetic is not modeled. profile / flash are not supported.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.export.tflite import NPU_BUILTINS
from edgeq.options import BuildOptions
from edgeq.targets.tflite import MODEL_FILE, TfliteTarget, export_build, verify

VELA_DIR = "vela"
FAMILY_CONFIG = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram_384KB"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB"),
}
# Vela 5.2's --accelerator-config choices
ACCELERATORS = ["ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
                "ethos-u65-256", "ethos-u65-512",
                "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048"]
# The operators a build must not leave on the CPU: those the export's npu stage maps to the NPU.
COMPUTE_OPS = NPU_BUILTINS


def vela_config_file() -> Path:
    """Arm's vela.ini inside the installed ethos-u-vela package."""
    try:
        import ethosu
    except ImportError:
        raise EdgeqError("ethos-u-vela is not installed", "pip install ethos-u-vela") from None
    path = Path(list(ethosu.__path__)[0]) / "config_files" / "Arm" / "vela.ini"
    if not path.is_file():
        raise EdgeqError(f"Vela's configuration file {path} is missing", "reinstall ethos-u-vela")
    return path


def vela_executable() -> str:
    """The `vela` script of this interpreter's environment (a venv that is not activated is
    not on PATH), else the one pip installed beside the importable ethosu package, else PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "vela", Path(sys.executable).parent / "vela"]
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        candidates += [Path(f.locate()).resolve() for f in distribution("ethos-u-vela").files or []
                       if f.name == "vela" and f.parent.name == "bin"]
    except PackageNotFoundError:
        pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    exe = shutil.which("vela")
    if exe is None:
        raise EdgeqError(f"the `vela` command is not installed for {sys.executable} (nor on PATH)",
                         f"{sys.executable} -m pip install ethos-u-vela")
    return exe


def vela_command(tflite: Path, accelerator: str, out_dir: Path) -> list[str]:
    exe = vela_executable()
    system, memory = FAMILY_CONFIG[accelerator.rsplit("-", 1)[0]]
    return [exe, str(tflite), "--accelerator-config", accelerator, "--config", str(vela_config_file()),
            "--system-config", system, "--memory-mode", memory, "--output-dir", str(out_dir),
            "--show-cpu-operations"]


CPU_WARNING = re.compile(r"Warning \(supported operators\) operator: (\S+), ofm: '([^']*)'\n"
                         r"Reason: (.*?)(?:\n\n|\Z)", re.S)
OP_COUNT = re.compile(r"(CPU|NPU) operators = (\d+) \(([\d.]+)%\)")


def parse_vela(stdout: str, csv_path: Path, tflite_ops: dict[str, int]) -> dict:
    """Vela's stdout + summary CSV -> the report's "npu" section."""
    row = next(csv.DictReader(csv_path.open()))
    kib = lambda key: int(round(float(row.get(key, 0) or 0) * 1024))  # noqa: E731  (Vela reports KiB)
    fallbacks = [{"op": op, "output": ofm, "reason": " ".join(reason.split())}
                 for op, ofm, reason in CPU_WARNING.findall(stdout)]
    counts = {k: (int(n), float(p)) for k, n, p in OP_COUNT.findall(stdout)}
    total = sum(tflite_ops.values())
    return {
        "accelerator": row["accelerator_configuration"],
        "system_config": row["system_config"],
        "memory_mode": row["memory_mode"],
        "core_clock_hz": float(row["core_clock"]),
        "npu_cycles": int(float(row["cycles_npu"])),
        "total_cycles": int(float(row["cycles_total"])),
        "inferences_per_second": float(row["inferences_per_second"]),
        "inference_time_s": float(row["inference_time"]),
        "sram_bytes": kib("sram_memory_used"),
        "off_chip_flash_bytes": kib("off_chip_flash_memory_used"),
        "on_chip_flash_bytes": kib("on_chip_flash_memory_used"),
        "dram_bytes": kib("dram_memory_used"),
        "weights_original_bytes": int(float(row["total_original_weights"])),
        "weights_encoded_bytes": int(float(row["total_npu_encoded_weights"])),
        "nn_macs": int(float(row["nn_macs"])),
        # Vela's own operator counts (after it decomposes ops, e.g. SOFTMAX into ~30)
        "vela_npu_operators": counts.get("NPU", (0, 0.0))[0],
        "vela_cpu_operators": counts.get("CPU", (0, 0.0))[0],
        # at the level of the exported .tflite: which of its operators stay on the CPU
        "tflite_operators": total,
        "cpu_fallbacks": fallbacks,
        "npu_share": (total - len(fallbacks)) / total if total else 1.0,
        "cycles_are": "Vela's performance estimate for this system config, not a measurement",
    }


class NpuTarget:
    # an op without an NPU operator still builds: Vela runs it on the CPU (edgeq ops: npu column)
    stages = ("reference", "tflite")

    def __init__(self, accelerator: str):
        self.name = accelerator
        family, macs = accelerator.rsplit("-", 1)
        system, memory = FAMILY_CONFIG[family]
        self.description = (f"Arm Ethos-{family.split('-')[1].upper()} NPU, {macs} MACs/cycle: "
                            f"int8 .tflite compiled by Vela ({system}, {memory})")

    def build(self, qgraph, out_dir: Path, report: dict, options: BuildOptions | dict | None = None) -> None:
        test_vectors = BuildOptions.of(options).test_vectors
        out_dir = Path(out_dir)
        data = export_build(qgraph, out_dir, report)
        verify(qgraph, data, test_vectors, report)
        vela_out = out_dir / VELA_DIR
        vela_out.mkdir(exist_ok=True)
        cmd = vela_command(out_dir / MODEL_FILE, self.name, vela_out)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            raise EdgeqError("Vela did not finish within 30 minutes", "try a smaller model") from None
        (vela_out / "vela_stdout.txt").write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise EdgeqError(f"Vela failed ({res.returncode}): {' | '.join(tail)}",
                             f"see {vela_out / 'vela_stdout.txt'}")
        csvs = sorted(vela_out.glob("*_summary_*.csv"))
        compiled = vela_out / (Path(MODEL_FILE).stem + "_vela.tflite")
        if not csvs or not compiled.is_file():
            raise EdgeqError("Vela wrote no summary CSV or no compiled model", f"see {vela_out / 'vela_stdout.txt'}")
        npu = parse_vela(res.stdout, csvs[0], report["tflite"]["ops"])
        npu["compiled_model"] = f"{VELA_DIR}/{compiled.name}"
        npu["compiled_bytes"] = compiled.stat().st_size
        report["npu"] = npu
        report.update(flash_bytes=npu["compiled_bytes"], arena_bytes=npu["sram_bytes"],
                      sram_bytes=npu["sram_bytes"], npu_cycles=npu["npu_cycles"],
                      inferences_per_second=npu["inferences_per_second"],
                      runner="LiteRT BUILTIN_REF on model.tflite (the network before Vela; "
                             "no Ethos-U simulator, NPU arithmetic not modeled)")

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return TfliteTarget().run(out_dir, feeds)

    def profile(self, out_dir: Path, device: str = "host") -> dict:
        raise EdgeqError(f"profile is not supported for this target ({self.name}): there is no "
                         "Ethos-U device or simulator here",
                         "read Vela's cycle estimate in report.json['npu']")

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        raise EdgeqError(f"flash is not supported for this target ({self.name})",
                         "link vela/model_vela.tflite into an Ethos-U application (TFLM + ethos-u driver)")


TARGETS = [NpuTarget(a) for a in ACCELERATORS]
