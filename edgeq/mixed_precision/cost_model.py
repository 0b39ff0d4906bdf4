"""Costs a bit-width changes, per layer and bit-width, for the ILP's budgets.

- BOPs (HAWQ-V3): MACs x weight bits x activation bits (activations are int8 here).
- instructions: measured, not modelled. The float graph is quantized all-int8 and all-int4,
  each built for the MCU target and run on its QEMU board with the layer-marking plugin
  (targets/profile_qemu.py); a layer's count at b bits is its count in the all-b build.
  The builds come through a `measure(qgraph, profile) -> {"flash", "functions",
  "kernels", "profile"}` callback the compile driver makes from the target
  (edgeq/driver/measure.py): this package never imports a target.
  Layers without weights (pooling, requantize, adds) cost the same in both builds and form
  the budget's offset. Counts are QEMU instructions, not cycles.
- firmware flash: measured from two linked firmwares (all-int8, all-int4), not modelled per
  byte of code. A layer costs its packed weight array (4-byte aligned, as carray.py writes
  it); each int4 kernel's code (the C kernel the all-int4 build ran for that layer, e.g.
  eq_conv2d_s4) is paid once if any layer it serves is int4; everything else (int8 kernels, biases,
  multipliers, the runtime) is the offset, read from the all-int8 ELF. A plan with no int8
  Conv/Gemm left drops the int8 kernels and is over-estimated by their code, never under.
"""
from __future__ import annotations

from typing import Callable, Sequence

from edgeq.mixed_precision.ilp import Budget, Once
from edgeq.mixed_precision.layers import Layer
from edgeq.quantization.quantize import quantize

ACT_BITS = 8
# measure(qgraph, profile) -> {"flash": bytes, "functions": {name: code bytes},
#                              "kernels": {layer: C function}, "profile": QEMU profile or None}
Measure = Callable[..., dict]


def bops_table(layers: Sequence[Layer], bits: Sequence[int] = (4, 8)) -> dict[str, dict[int, float]]:
    return {l.name: {b: float(l.macs * b * ACT_BITS) for b in bits} for l in layers}


def build_uniform(graph, ranges, measure: Measure, weight_granularity: str = "per-channel",
                  profile: bool = False, bits: Sequence[int] = (8, 4)) -> dict[int, dict]:
    """{bits: measure(...)} of the model quantized all-`bits` and built for the target (no
    test vectors). One pair of builds serves both the latency and the firmware budget."""
    return {b: measure(quantize(graph, ranges, weight_granularity=weight_granularity, weight_bits=b), profile)
            for b in bits}


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

def firmware_flash_budget(builds: dict[int, dict], layers: Sequence[Layer]) -> Budget:
    """The firmware's flash bytes as a Budget (limit still 0) from the uniform builds: the
    all-int8 firmware minus its weight arrays is the offset, each layer costs its packed
    array, each int4 kernel's code is paid once (module doc)."""
    cost = {l.name: {b: float(_aligned(l.weight_bytes(b))) for b in (4, 8)} for l in layers}
    users: dict[str, set[str]] = {}  # the int4 kernel each layer runs: linked only if some layer needs it
    for l in layers:
        users.setdefault(builds[4]["kernels"].get(l.name, ""), set()).add(l.name)
    code = builds[4]["functions"]
    once = [Once(float(code[k] + LINK_SLACK), 4, frozenset(names)) for k, names in users.items() if k in code]
    offset = builds[8]["flash"] - sum(c[8] for c in cost.values())
    return Budget("firmware flash bytes", cost, 0.0, float(offset), once)
