"""assign_bitwidth_ilp: one bit-width per layer, least total sensitivity, within budgets.

The integer program (HAWQ-V3, solved exactly by HiGHS through scipy.optimize.milp):

    minimise   sum_g sum_b  S[g, b] x[g, b]          S[g, b] = sum of the group's sensitivities
    subject to sum_b x[g, b] = 1                      one bit-width per group
               sum_g sum_b  C_k[g, b] x[g, b] <= L_k  for every budget k (bytes, BOPs, instructions)
               x binary

A group is a set of layers tied to one precision (`ties`); untied layers are groups of one,
so ties cost no extra constraints. `locks` pin a layer (and its group) to given bits, e.g.
first and last layer int8 as HAWQ does.

Edge cases, decided here so callers need not:
- every budget admits each group at its widest allowed bits -> that plan, no solve (with
  sensitivities that never favour fewer bits it is the optimum);
- a budget below what any plan reaches -> EdgeqError naming the smallest achievable value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from edgeq.errors import EdgeqError
from edgeq.mixed_precision.layers import Layer

BITS = (4, 8)


@dataclass
class Budget:
    """sum over layers of cost[layer][bits] + offset <= limit."""
    name: str                              # e.g. "weight bytes", "instructions", "BOPs"
    cost: dict[str, dict[int, float]]
    limit: float
    offset: float = 0.0                    # the part no bit-width changes (other layers)


def size_budget(layers: Sequence[Layer], limit: float, bits: Iterable[int] = BITS) -> Budget:
    """Packed weight bytes of the Conv/Gemm layers (int4 two per byte) <= limit."""
    return Budget("weight bytes", {l.name: {b: l.weight_bytes(b) for b in bits} for l in layers}, limit)


def _groups(names: list[str], ties: Iterable[Iterable[str]]) -> list[list[str]]:
    parent = {n: n for n in names}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n
    for tie in ties:
        tie = list(tie)
        unknown = [t for t in tie if t not in parent]
        if unknown:
            raise EdgeqError(f"ties name unknown layers {unknown}", "use Conv/Gemm node names of the float graph")
        for t in tie[1:]:
            parent[find(t)] = find(tie[0])
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(find(n), []).append(n)
    return list(out.values())


def _allowed(group: list[str], bits: tuple[int, ...], locks: dict[str, int]) -> list[int]:
    pinned = {locks[n] for n in group if n in locks}
    if len(pinned) > 1:
        raise EdgeqError(f"layers {group} are tied but locked to different bits {sorted(pinned)}",
                         "lock a tied group to one bit-width")
    if pinned and not pinned <= set(bits):
        raise EdgeqError(f"lock {sorted(pinned)} is not one of the bit-widths {list(bits)}",
                         f"lock to one of {list(bits)}")
    return sorted(pinned) if pinned else list(bits)


def assign_bitwidth_ilp(layers: Sequence[Layer | str], sensitivity: dict[str, dict[int, float]],
                        budgets: Sequence[Budget], ties: Iterable[Iterable[str]] = (),
                        locks: dict[str, int] | None = None, bits: Sequence[int] = BITS) -> dict[str, int]:
    """{layer name: bits} minimising total sensitivity within every budget."""
    names = [l.name if isinstance(l, Layer) else l for l in layers]
    bits = tuple(sorted(set(bits)))
    locks = dict(locks or {})
    groups = _groups(names, ties)
    choices = [(g, b) for g in range(len(groups)) for b in _allowed(groups[g], bits, locks)]

    def coef(table: dict[str, dict[int, float]], g: int, b: int) -> float:
        return float(sum(table[n][b] for n in groups[g]))

    widest = {n: max(_allowed(grp, bits, locks)) for grp in groups for n in grp}
    if all(_plan_cost(k, widest) <= k.limit for k in budgets):
        return widest

    A_one = np.zeros((len(groups), len(choices)))
    for j, (g, _) in enumerate(choices):
        A_one[g, j] = 1
    cons = [LinearConstraint(A_one, 1, 1)]
    rows = np.array([[coef(k.cost, g, b) for g, b in choices] for k in budgets])
    if len(budgets):
        cons.append(LinearConstraint(rows, -np.inf, [k.limit - k.offset for k in budgets]))
    c = np.array([coef(sensitivity, g, b) for g, b in choices])
    scale = np.max(np.abs(c)) or 1.0  # HiGHS tolerances are absolute: keep the objective O(1)
    res = milp(c / scale, constraints=cons, integrality=np.ones(len(choices)), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 1e-9})
    if res.status != 0 or res.x is None:
        raise _infeasible(budgets, groups, choices, rows, A_one)
    plan = {}
    for j, (g, b) in enumerate(choices):
        if res.x[j] > 0.5:
            for n in groups[g]:
                plan[n] = b
    return {n: plan[n] for n in names}


def _plan_cost(budget: Budget, plan: dict[str, int]) -> float:
    return budget.offset + sum(budget.cost[n][b] for n, b in plan.items())


def _infeasible(budgets, groups, choices, rows, A_one) -> EdgeqError:
    """Name the smallest value of each budget that any plan (within the others) reaches."""
    parts = []
    for k, budget in enumerate(budgets):
        others = [i for i in range(len(budgets)) if i != k]
        cons = [LinearConstraint(A_one, 1, 1)]
        if others:
            cons.append(LinearConstraint(rows[others], -np.inf,
                                         [budgets[i].limit - budgets[i].offset for i in others]))
        res = milp(rows[k], constraints=cons, integrality=np.ones(len(choices)), bounds=Bounds(0, 1))
        if res.status == 0 and res.fun + budget.offset > budget.limit:
            parts.append(f"{budget.name} <= {budget.limit:,.0f} (smallest achievable: "
                         f"{res.fun + budget.offset:,.0f})")
    what = "; ".join(parts) or "the budgets together"
    return EdgeqError(f"no bit-width plan meets {what}",
                      "raise the budget to at least the smallest achievable value, or drop ties/locks")
