"""Exact instruction counts per layer on a QEMU board, from the TCG plugin in targets/plugin.

The firmware is relinked with model.c compiled under -DEDGEQ_PROFILE, so edgeq_layer_mark(i)
runs before layer i and after the last layer. The plugin counts every executed guest
instruction and writes the counter at each entry of edgeq_layer_mark; differences between
consecutive marks are the instructions of one layer (the mark call's few instructions
included). These are instructions, not cycles: QEMU models no pipeline or memory timing.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.targets import c_project as cp, qemu
from edgeq.targets.c_project import cache_dir
from edgeq.targets.elfsize import symbol

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin"


def plugin_library() -> Path:
    """Build (once per source hash) the counting plugin with the host gcc."""
    gcc = cp.require_tool("gcc", "gcc")
    srcs = sorted(PLUGIN_DIR.glob("*.c")) + sorted(PLUGIN_DIR.glob("*.h"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in srcs)).hexdigest()[:16]
    so = cache_dir() / f"insn_count-{digest}.so"
    if not so.exists():
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        cp.run_tool([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                     PLUGIN_DIR / "insn_count.c", "-o", tmp], "host gcc (QEMU plugin)", timeout=60)
        os.replace(tmp, so)
    return so


def _profile_vector(info: dict) -> dict[str, np.ndarray]:
    """One fixed input (seeded): counts are a property of the build, not of a data set."""
    rng = np.random.default_rng(0)
    return {t["name"]: rng.integers(-128, 128, size=t["shape"], dtype=np.int8) for t in info["io"]["inputs"]}


def profile_on_qemu(target, out_dir: Path) -> dict:
    info = cp.load_info(out_dir, target.name)
    machine = info["board"]["machine"]
    with tempfile.TemporaryDirectory(prefix="edgeq-profile-") as tmp:  # DIR is not written
        elf = target._relink_with_vectors(out_dir, info, _profile_vector(info), "prof", profile=True,
                                          scratch=Path(tmp))
        mark = symbol(elf, "edgeq_layer_mark")
        if mark is None:
            raise EdgeqError("the profiling firmware has no edgeq_layer_mark", "this is an edgeq bug: please report it")
        addr = mark[0] & ~1  # Thumb functions have bit 0 set in the symbol, not in the PC
        counts_file = Path(tmp) / "counts.txt"
        res = qemu.run_firmware(machine, elf, plugin=plugin_library(),
                                plugin_args={"mark": hex(addr), "out": str(counts_file)})
        qemu.check_status(res, machine, allow_mismatch=False)
        lines = counts_file.read_text().split("\n") if counts_file.exists() else []
    marks = [int(l) for l in lines if l.strip().isdigit()]
    total = next((int(l.split()[1]) for l in lines if l.startswith("total")), None)
    n = info["num_layers"]
    if len(marks) < n + 1:
        raise EdgeqError(f"the plugin saw {len(marks)} layer marks, expected {n + 1}",
                         "check that qemu-system-arm supports -plugin (QEMU >= 4.2 built with plugins)")
    marks = marks[:n + 1]  # the first inference
    layers = [{"name": name, "instructions": marks[i + 1] - marks[i]} for i, name in enumerate(info["layers"])]
    return {"device": "qemu", "machine": machine, "counter": "instructions (QEMU TCG plugin, exact), not cycles",
            "instructions": marks[-1] - marks[0], "layers": layers, "firmware_total_instructions": total,
            "emulator_seconds": res.seconds}
