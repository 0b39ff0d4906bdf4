"""The compile stage behind `--weight-bits auto`: sensitivities -> ILP -> {layer: bits}.

Budgets (at least one is needed, else all-int8 would be the answer):
- flash: on the packed Conv/Gemm weight bytes only (biases and multipliers do not change
  with the bit-width; the int4 kernels' code does, and only the firmware budget counts it).
  "200KB" (1000 bytes), "196KiB", "200000", or "60%" of the all-int8 weight bytes.
- firmware (MCU targets): the whole firmware's flash as the ELF measures it (code, weights,
  biases, runtime; not edgeq's embedded test vectors): "200KB" or "90%" of the all-int8
  firmware. Priced from two linked firmwares (cost_model.firmware_flash_budget), so the
  int4 kernels' code counts against it.
- latency: QEMU instructions per inference on the target's board (MCU targets only),
  measured per layer for int8 and int4 (cost_model.py). "1500000", "1.5M", or "105%" of
  the all-int8 count.
"""
from __future__ import annotations

import re

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.mixed_precision.ilp import assign_bitwidth_ilp, plan_cost, size_budget
from edgeq.mixed_precision.layers import total_weight_bytes, weighted_layers

SENSITIVITIES = ("hawq", "measured")
_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2, "mib": 1024 ** 2,
          "k": 1000, "m": 1000 ** 2}


def parse_budget(text, reference: float, what: str) -> float:
    """A number with an optional unit, or a percentage of `reference` (the all-int8 value)."""
    s = str(text).strip().lower().replace(" ", "").replace("_", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%|[a-z]*)", s)
    if not m or (m.group(2) not in _UNITS and m.group(2) != "%"):
        raise EdgeqError(f"cannot read {what} {text!r}",
                         "write bytes/instructions as 200000, 200KB, 196KiB, 1.5M, or a share of "
                         "all-int8 as 60%")
    v = float(m.group(1))
    return reference * v / 100 if m.group(2) == "%" else v * _UNITS[m.group(2)]


def _first_last(layers) -> dict[str, int]:
    return {layers[0].name: 8, layers[-1].name: 8} if layers else {}


def fake_quant_sqnr(graph, feeds, layers, per_channel: bool):
    """A plan's fidelity without the integer pipeline: SQNR (dB) of the float model with
    the planned weights fake-quantized, against the float model, on `feeds`."""
    from edgeq.float_exec import run_float
    from edgeq.quantize_weights import fake_quantize_weights
    out = graph.outputs[0]
    ref = run_float(graph, feeds)[out].astype(np.float64)

    def sqnr(plan: dict[str, int]) -> float:
        saved = {}
        try:
            for l in layers:
                t = graph.tensors[l.weight]
                saved[l.weight] = t.data
                t.data = fake_quantize_weights(t.data, plan.get(l.name, 8), per_channel)
            y = run_float(graph, feeds)[out].astype(np.float64)
        finally:
            for w, d in saved.items():
                graph.tensors[w].data = d
        noise = float(((y - ref) ** 2).sum())
        return float(10 * np.log10((ref ** 2).sum() / noise)) if noise > 0 else 99.0
    return sqnr


def plan_weight_bits(graph, feeds, ranges, *, target: str, flash_budget=None, latency_budget=None,
                     firmware_budget=None,
                     sensitivity: str = "measured", keep_ends_int8: bool = True, ties=(),
                     per_channel: bool = True, progress: bool = False, pareto: bool = True,
                     rounding: str = "gptq"):
    """({layer: bits}, report section). `ranges` are needed only for a latency budget."""
    from edgeq.mixed_precision import sensitivity as sens_mod
    if feeds is None:
        raise EdgeqError("--weight-bits auto needs calibration data (sensitivities are measured on it)",
                         "give --calib FILE, or choose --weight-bits 8 or 4")
    if flash_budget is None and latency_budget is None and firmware_budget is None:
        raise EdgeqError("--weight-bits auto needs a budget",
                         "give --flash-budget (e.g. 60% or 200KB), --firmware-budget and/or --latency-budget")
    if (firmware_budget is not None or latency_budget is not None) and not target.startswith("cortex-m"):
        which = "--firmware-budget" if firmware_budget is not None else "--latency-budget"
        raise EdgeqError(f"{which} is measured on a linked firmware, which target {target!r} does not build",
                         "use a cortex-m* target, or only --flash-budget")
    for text, what in ((flash_budget, "--flash-budget"), (firmware_budget, "--firmware-budget"),
                       (latency_budget, "--latency-budget")):
        if text is not None:  # a typo fails now, not after minutes of sensitivities and builds
            parse_budget(text, 1.0, what)
    if sensitivity not in SENSITIVITIES:
        raise EdgeqError(f"unknown sensitivity {sensitivity!r}", f"use one of {', '.join(SENSITIVITIES)}")
    layers = weighted_layers(graph)
    # 64 inputs: Hessian-vector products through depthwise convs are slow on CPU (about
    # 1.7 s per probe per 32 dscnn images on 2 cores); 8 probes x 64 inputs ranks layers stably
    feeds = {k: v[:64] for k, v in feeds.items()}
    if sensitivity == "hawq":
        sens, extra = sens_mod.hawq_sensitivity(graph, feeds, layers, per_channel=per_channel, iters=8,
                                                 batch=64, progress=progress, rounding=rounding)
    else:
        sens, extra = sens_mod.measured_sensitivity(graph, feeds, layers, per_channel=per_channel,
                                                    progress=progress, rounding=rounding)
    locks = _first_last(layers) if keep_ends_int8 else {}
    all8 = total_weight_bytes(layers, 8)
    budgets, section = [], {"sensitivity_measure": sensitivity, "locks": locks, "ties": [list(t) for t in ties],
                            "all_int8_weight_bytes": all8, "all_int4_weight_bytes": total_weight_bytes(layers, 4)}
    if flash_budget is not None:
        limit = parse_budget(flash_budget, all8, "--flash-budget")
        budgets.append(size_budget(layers, limit))
        section["flash_budget_weight_bytes"] = int(limit)
    if firmware_budget is not None or latency_budget is not None:
        from edgeq.mixed_precision import cost_model
        builds = cost_model.build_uniform(graph, ranges, target, "per-channel" if per_channel else "per-tensor",
                                          profile=latency_budget is not None)
    if firmware_budget is not None:
        fw = cost_model.firmware_flash_budget(builds, graph, layers)
        fw.limit = parse_budget(firmware_budget, builds[8]["flash"], "--firmware-budget")
        budgets.append(fw)
        section.update(firmware_budget_bytes=int(fw.limit), all_int8_firmware_bytes=builds[8]["flash"])
    if latency_budget is not None:
        table, offset, totals = cost_model.instruction_table(builds, layers)
        limit = parse_budget(latency_budget, totals[8], "--latency-budget")
        lat = cost_model.latency_budget(table, offset, limit)
        budgets.append(lat)
        section.update(latency_budget_instructions=int(limit), all_int8_instructions=int(totals[8]),
                       all_int4_instructions=int(totals[4]))
    plan = assign_bitwidth_ilp(layers, sens, budgets, ties, locks)
    section["weight_bytes"] = total_weight_bytes(layers, plan)
    if firmware_budget is not None:
        section["firmware_bytes_predicted"] = int(plan_cost(fw, plan))
    if latency_budget is not None:
        section["instructions_predicted"] = int(plan_cost(lat, plan))
    section["layers"] = {l.name: {"bits": plan[l.name], "sensitivity": sens[l.name][plan[l.name]],
                                  "sensitivity_int4": sens[l.name][4], "sensitivity_int8": sens[l.name][8],
                                  ("hessian_trace" if sensitivity == "hawq" else "sqnr_int4_db"): extra[l.name],
                                  "weight_bytes": l.weight_bytes(plan[l.name])} for l in layers}
    if pareto:  # the points now; the caller plots them into its build folder (pareto.plot)
        from edgeq.mixed_precision.pareto import sweep
        fid = fake_quant_sqnr(graph, {k: v[:128] for k, v in feeds.items()}, layers, per_channel)
        section["pareto"] = sweep(layers, sens, fid, ties=ties, locks=locks)
        section["pareto_fidelity"] = "SQNR (dB) of the fake-quantized float model vs float, calibration data"
    return plan, section
