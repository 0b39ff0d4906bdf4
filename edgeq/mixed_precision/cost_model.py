"""Costs a bit-width changes, per layer and bit-width, for the ILP's budgets.

- BOPs (HAWQ-V3): MACs x weight bits x activation bits (activations are int8 here).
- instructions: measured, not modelled. The float graph is quantized all-int8 and all-int4,
  each built for the MCU target and run on its QEMU board with the layer-marking plugin
  (targets/profile_qemu.py); a layer's count at b bits is its count in the all-b build.
  Layers without weights (pooling, requantize, adds) cost the same in both builds and form
  the budget's offset. Counts are QEMU instructions, not cycles.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from edgeq.mixed_precision.ilp import Budget
from edgeq.mixed_precision.layers import Layer

ACT_BITS = 8


def bops_table(layers: Sequence[Layer], bits: Sequence[int] = (4, 8)) -> dict[str, dict[int, float]]:
    return {l.name: {b: float(l.macs * b * ACT_BITS) for b in bits} for l in layers}


def measure_instructions(graph, ranges, target_name: str, layers: Sequence[Layer],
                         weight_granularity: str = "per-channel",
                         bits: Sequence[int] = (4, 8)) -> tuple[dict[str, dict[int, float]], float, dict]:
    """({layer: {bits: instructions}}, offset, {bits: total}) from one QEMU profile per bit-width."""
    from edgeq.quantize import quantize
    from edgeq.report import base_report
    from edgeq.targets import get_target
    target = get_target(target_name)
    table: dict[str, dict[int, float]] = {l.name: {} for l in layers}
    totals, offsets = {}, {}
    for b in bits:
        qgraph = quantize(graph, ranges, weight_granularity=weight_granularity, weight_bits=b)
        with tempfile.TemporaryDirectory(prefix="edgeq-cost-") as tmp:
            target.build(qgraph, Path(tmp), base_report(qgraph, target_name), None)
            prof = target.profile(Path(tmp), "qemu")
        per = {r["name"]: r["instructions"] for r in prof["layers"]}
        for l in layers:
            table[l.name][b] = float(per[l.name])
        totals[b] = float(prof["instructions"])
        offsets[b] = totals[b] - sum(table[l.name][b] for l in layers)
    # the unweighted layers run the same kernels in every build: one offset serves all
    return table, max(offsets.values()), totals


def latency_budget(table: dict[str, dict[int, float]], offset: float, limit: float) -> Budget:
    return Budget("instructions", table, limit, offset)
