"""Costs a bit-width changes, per layer and bit-width, for the ILP's budgets.

- BOPs (HAWQ-V3): MACs x weight bits x activation bits (activations are int8 here).
- instructions: measured, not modelled. The float graph is quantized all-int8 and all-int4,
  each built for the MCU target and run on its QEMU board with the layer-marking plugin
  (targets/profile_qemu.py); a layer's count at b bits is its count in the all-b build.
  Layers without weights (pooling, requantize, adds) cost the same in both builds and form
  the budget's offset. Counts are QEMU instructions, not cycles.
- firmware flash: measured from two linked firmwares (all-int8, all-int4), not modelled per
  byte of code. A layer costs its packed weight array (4-byte aligned, as carray.py writes
  it); each int4 kernel's code (eq_conv2d_s4, eq_fully_connected_s4 in the all-int4 ELF)
  is paid once if any layer it serves is int4; everything else (int8 kernels, biases,
  multipliers, the runtime) is the offset, read from the all-int8 ELF. A plan with no int8
  Conv/Gemm left drops the int8 kernels and is over-estimated by their code, never under.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from edgeq.mixed_precision.ilp import Budget, Once
from edgeq.mixed_precision.layers import Layer

ACT_BITS = 8


def _measurement_report(qgraph, target) -> dict:
    """A build report whose flash is the emulated board's, not the part's: the all-int8
    build is measured precisely when it may not fit the part (that is why a budget was
    given); the planned firmware is still linked against the part's flash afterwards."""
    from edgeq.report import base_report
    report = base_report(qgraph, target.name)
    report["budget"] = {"flash_bytes": target.board.get("qemu_flash_bytes", target.board["flash_bytes"])}
    return report


def bops_table(layers: Sequence[Layer], bits: Sequence[int] = (4, 8)) -> dict[str, dict[int, float]]:
    return {l.name: {b: float(l.macs * b * ACT_BITS) for b in bits} for l in layers}


def build_uniform(graph, ranges, target_name: str, weight_granularity: str = "per-channel",
                  profile: bool = False, bits: Sequence[int] = (8, 4)) -> dict[int, dict]:
    """{bits: {"flash": bytes, "functions": {name: code bytes}, "profile": QEMU profile or
    None}} of the model quantized all-`bits` and linked for the target (no test vectors).
    One pair of builds serves both the latency and the firmware budget."""
    from edgeq.quantize import quantize
    from edgeq.targets import get_target
    from edgeq.targets.elfsize import function_sizes
    target = get_target(target_name)
    out = {}
    for b in bits:
        qgraph = quantize(graph, ranges, weight_granularity=weight_granularity, weight_bits=b)
        report = _measurement_report(qgraph, target)
        with tempfile.TemporaryDirectory(prefix="edgeq-cost-") as tmp:
            target.build(qgraph, Path(tmp), report, None)
            out[b] = {"flash": int(report["flash_bytes"]), "functions": function_sizes(Path(tmp) / "fw.elf"),
                      "profile": target.profile(Path(tmp), "qemu") if profile else None}
    return out


def instruction_table(builds: dict[int, dict], layers: Sequence[Layer]) -> tuple[dict, float, dict]:
    """({layer: {bits: instructions}}, offset, {bits: total}) from profiled uniform builds:
    a layer's count at b bits is its count in the all-b build."""
    table: dict[str, dict[int, float]] = {l.name: {} for l in layers}
    totals, offsets = {}, {}
    for b, build in builds.items():
        prof = build["profile"]
        per = {r["name"]: r["instructions"] for r in prof["layers"]}
        for l in layers:
            table[l.name][b] = float(per[l.name])
        totals[b] = float(prof["instructions"])
        offsets[b] = totals[b] - sum(table[l.name][b] for l in layers)
    # the unweighted layers run the same kernels in every build: one offset serves all
    return table, max(offsets.values()), totals


def latency_budget(table: dict[str, dict[int, float]], offset: float, limit: float) -> Budget:
    return Budget("instructions", table, limit, offset)


def _aligned(n: int) -> int:
    return -(-n // 4) * 4


# Linking an int4 kernel in also moves what follows it to new alignments: 44 bytes beyond
# its symbol sizes measured on dscnn for cortex-m7. Reserved per kernel so the budget holds.
LINK_SLACK = 64

# the int4 kernel each weighted op runs (codegen); its code is linked only if some layer needs it
INT4_KERNELS = {"Conv": "eq_conv2d_s4", "Gemm": "eq_fully_connected_s4", "MatMul": "eq_fully_connected_s4"}


def firmware_flash_budget(builds: dict[int, dict], graph, layers: Sequence[Layer]) -> Budget:
    """The firmware's flash bytes as a Budget (limit still 0) from the uniform builds: the
    all-int8 firmware minus its weight arrays is the offset, each layer costs its packed
    array, each int4 kernel's code is paid once (module doc)."""
    cost = {l.name: {b: float(_aligned(l.weight_bytes(b))) for b in (4, 8)} for l in layers}
    ops = {n.name: n.op for n in graph.nodes}
    users: dict[str, set[str]] = {}
    for l in layers:
        users.setdefault(INT4_KERNELS.get(ops[l.name], ""), set()).add(l.name)
    code = builds[4]["functions"]
    once = [Once(float(code[k] + LINK_SLACK), 4, frozenset(names)) for k, names in users.items() if k in code]
    offset = builds[8]["flash"] - sum(c[8] for c in cost.values())
    return Budget("firmware flash bytes", cost, 0.0, float(offset), once)
