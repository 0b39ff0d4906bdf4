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

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.floatexec.executor import run_float
from edgeq.mixed_precision import cost_model, sensitivity as sens_mod
from edgeq.mixed_precision.ilp import assign_bitwidth_ilp, plan_cost, size_budget
from edgeq.mixed_precision.layers import total_weight_bytes, weighted_layers
from edgeq.mixed_precision.pareto import sweep
from edgeq.options import parse_budget
from edgeq.quantization.weights import fake_quantize_weights

def _first_last(layers) -> dict[str, int]:
    return {layers[0].name: 8, layers[-1].name: 8} if layers else {}


def fake_quant_sqnr(graph, feeds, layers, per_channel: bool):
    """A plan's fidelity without the integer pipeline: SQNR (dB) of the float model with
    the planned weights fake-quantized, against the float model, on `feeds`."""
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


def plan_weight_bits(graph, feeds, ranges, *, target: str, measure=None, flash_budget=None,
                     latency_budget=None, firmware_budget=None,
                     sensitivity: str = "measured", keep_ends_int8: bool = True, ties=(),
                     per_channel: bool = True, progress: bool = False, pareto: bool = True,
                     rounding: str = "gptq"):
    """({layer: bits}, report section). `ranges` and `measure` (cost_model.Measure: firmware
    builds of the target, made by the compile driver; None for a target that builds none)
    are needed only for a firmware or latency budget."""
    if (firmware_budget is not None or latency_budget is not None) and measure is None:
        which = "--firmware-budget" if firmware_budget is not None else "--latency-budget"
        raise EdgeqError(f"{which} is measured on a linked firmware, which target {target!r} does not build",
                         "use a cortex-m* target, or only --flash-budget")
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
        builds = cost_model.build_uniform(graph, ranges, measure, "per-channel" if per_channel else "per-tensor",
                                          profile=latency_budget is not None)
    if firmware_budget is not None:
        fw = cost_model.firmware_flash_budget(builds, layers)
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
        fid = fake_quant_sqnr(graph, {k: v[:128] for k, v in feeds.items()}, layers, per_channel)
        section["pareto"] = sweep(layers, sens, fid, ties=ties, locks=locks)
        section["pareto_fidelity"] = "SQNR (dB) of the fake-quantized float model vs float, calibration data"
    return plan, section
