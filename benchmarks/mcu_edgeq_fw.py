"""edgeq's firmware as it is today, per layer, on one real input.

The same machinery as `edgeq profile` (targets/profile_qemu.py): the build's model.c
relinked under -DEDGEQ_PROFILE, so edgeq_layer_mark(i) runs before layer i and after the
last, counted by the instruction plugin; here the embedded input is the benchmark's real
one instead of profile's seeded random vector, and the plugin also writes its per-address
profile (code bytes, instruction mix). The firmware prints its outputs, which must equal
the integer reference's.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FirmwareRun:
    instructions: dict[int, int]        # layer index -> instructions between its marks
    profile: dict[int, dict[int, int]]  # layer index -> {address: executions}
    bit_exact: bool
    elf: Path
    runtime_lib: Path
    flash_bytes: int


def measure_firmware(target, out_dir: Path, qgraph, feeds: dict[str, np.ndarray]) -> FirmwareRun:
    from edgeq.reference.interpreter import run_reference
    from edgeq.targets import c_project as cp
    from edgeq.targets import qemu
    from edgeq.targets.elfsize import symbol
    from edgeq.targets.mcu import runtime_library
    from edgeq.targets.profile_qemu import plugin_library
    from mcu_harness import read_pcs

    info = cp.load_info(out_dir, target.name)
    elf = target._relink_with_vectors(out_dir, info, feeds, "speed", profile=True)
    mark = symbol(elf, "edgeq_layer_mark")
    with tempfile.TemporaryDirectory() as tmp:
        counts, pcs = Path(tmp) / "counts.txt", Path(tmp) / "pcs.txt"
        res = qemu.run_firmware(info["board"]["machine"], elf, timeout=1800, plugin=plugin_library(),
                                plugin_args={"mark": hex(mark[0] & ~1), "out": str(counts), "pcs": str(pcs)})
        qemu.check_status(res, info["board"]["machine"], allow_mismatch=False)
        marks = [int(v) for v in counts.read_text().split("\n") if v.strip().isdigit()]
        blocks = read_pcs(pcs)
    n = info["num_layers"]
    if len(marks) < n + 1:
        raise RuntimeError(f"{out_dir}: {len(marks)} layer marks, expected {n + 1}")
    got = cp.parse_lines(res.stdout, info["io"])["outputs"]
    want = run_reference(qgraph, feeds)
    exact = all(np.array_equal(got[k].reshape(want[k].shape), want[k]) for k in qgraph.outputs)
    instructions: dict[int, int] = {}
    profile: dict[int, dict[int, int]] = {}
    for fw_layer, layer in enumerate(graph_layers(info["layers"], qgraph)):
        instructions[layer] = instructions.get(layer, 0) + marks[fw_layer + 1] - marks[fw_layer]
        merged = profile.setdefault(layer, {})
        for pc, count in blocks[fw_layer + 1].items():
            merged[pc] = merged.get(pc, 0) + count
    return FirmwareRun(instructions, profile, exact, elf,
                       runtime_library(info["board"]["cpu_flags"]), int(_report(out_dir)["flash_bytes"]))


def graph_layers(fw_layers: list[str], qgraph) -> list[int]:
    """The quantized graph's layer index of each firmware layer. The firmware runs the graph
    lowered for its kernels (edgeq/codegen/layout.py): the model's nodes under their own
    names, plus relayouts (transposes between layouts), which count with the layer that
    reads them (or, after the last, with the last)."""
    index = {n.name: i for i, n in enumerate(qgraph.nodes)}
    out, pending = [], 0
    for name in fw_layers:
        if name in index:
            out += [index[name]] * (pending + 1)
            pending = 0
        else:
            pending += 1
    return out + [len(qgraph.nodes) - 1] * pending


def _report(out_dir: Path) -> dict:
    import json
    return json.loads((Path(out_dir) / "report.json").read_text())
