"""Size versus fidelity: ILP plans over a sweep of weight-size budgets, and their plot.

Each point is the ILP's plan at one budget between all-int4 and all-int8 weight bytes;
its fidelity comes from a caller's function (e.g. SQNR of the fake-quantized float model
against the float model on calibration data, or top-1 agreement).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.mixed_precision.ilp import Budget, assign_bitwidth_ilp, size_budget
from edgeq.mixed_precision.layers import Layer, total_weight_bytes


def sweep(layers: Sequence[Layer], sensitivity: dict, fidelity: Callable[[dict[str, int]], float],
          points: int = 9, ties=(), locks=None, extra: Sequence[Budget] = ()) -> list[dict]:
    lo, hi = total_weight_bytes(layers, 4), total_weight_bytes(layers, 8)
    out, seen = [], set()
    for limit in np.linspace(lo, hi, points):
        try:
            plan = assign_bitwidth_ilp(layers, sensitivity, [size_budget(layers, limit), *extra], ties, locks)
        except EdgeqError:
            continue  # below what the locks/ties allow: no point at this budget
        key = tuple(sorted(plan.items()))
        size = total_weight_bytes(layers, plan)
        if key not in seen:
            seen.add(key)
            out.append({"budget_bytes": int(limit), "weight_bytes": int(size),
                        "int4_layers": sum(b == 4 for b in plan.values()),
                        "sensitivity": float(sum(sensitivity[n][b] for n, b in plan.items())),
                        "fidelity": float(fidelity(plan))})
    return out


def plot(points: list[dict], path: Path, ylabel: str, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")  # no display on build machines
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = [p["weight_bytes"] / 1024 for p in points]
    ax.plot(xs, [p["fidelity"] for p in points], "o-")
    ax.set_xlabel("Conv/Gemm weight KiB (int4 packed)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "ILP bit-width plans over weight-size budgets")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
