"""assign_bitwidth_ilp: one bit-width per layer, least total sensitivity, within budgets.

The integer program (HAWQ-V3, solved exactly by HiGHS through scipy.optimize.milp):

    minimise   sum_g sum_b  S[g, b] x[g, b]          S[g, b] = sum of the group's sensitivities
    subject to sum_b x[g, b] = 1                      one bit-width per group
               sum_g sum_b  C_k[g, b] x[g, b]
                 + sum_i  F_k,i y[i]  <= L_k          for every budget k (bytes, BOPs, instructions)
               x[g, b_i] <= y[i]  for g in layers_i   y[i] = 1 when any of its layers uses b_i bits
               x, y binary

F_k,i is a cost paid once (`Once`) if any of its layers uses b_i bits: on a firmware
target the int4 conv kernel's code is linked only when some Conv is int4 (4.5 KB on
Cortex-M7), which decides whether lowering one small layer saves flash at all.

A group is a set of layers tied to one precision (`ties`); untied layers are groups of one,
so ties cost no extra constraints. `locks` pin a layer (and its group) to given bits, e.g.
first and last layer int8 as HAWQ does.

Edge cases, decided here so callers need not:
- every budget admits each group at its widest allowed bits -> that plan, no solve (with
  sensitivities that never favour fewer bits it is the optimum);
- a budget below what any plan reaches -> EdgeqError naming the smallest achievable value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from edgeq.errors import EdgeqError
from edgeq.mixed_precision.layers import Layer

BITS = (4, 8)


@dataclass(frozen=True)
class Once:
    """A cost paid once if any of `layers` (None: any layer) takes `bits` bits."""
    cost: float
    bits: int
    layers: frozenset[str] | None = None

    def triggered(self, plan: dict[str, int]) -> bool:
        return any(b == self.bits and (self.layers is None or n in self.layers) for n, b in plan.items())


@dataclass
class Budget:
    """sum over layers of cost[layer][bits] + offset <= limit."""
    name: str                              # e.g. "weight bytes", "instructions", "BOPs"
    cost: dict[str, dict[int, float]]
    limit: float
    offset: float = 0.0                    # the part no bit-width changes (other layers)
    once: list[Once] = field(default_factory=list)  # e.g. kernel code linked only if some layer needs it


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
    if all(plan_cost(k, widest) <= k.limit for k in budgets):
        return widest

    # columns: one x per (group, bits) choice, then one indicator y per once-paid cost
    onces = [o for k in budgets for o in k.once]
    n_x, n_var = len(choices), len(choices) + len(onces)
    A_one = np.zeros((len(groups), n_var))
    for j, (g, _) in enumerate(choices):
        A_one[g, j] = 1
    cons = [LinearConstraint(A_one, 1, 1)]
    rows = np.array([[coef(k.cost, g, b) for g, b in choices] + [o.cost if o in k.once else 0.0 for o in onces]
                     for k in budgets]).reshape(len(budgets), n_var)
    if len(budgets):
        cons.append(LinearConstraint(rows, -np.inf, [k.limit - k.offset for k in budgets]))
    link = [(j, i) for i, o in enumerate(onces) for j, (g, b) in enumerate(choices)
            if b == o.bits and (o.layers is None or o.layers & set(groups[g]))]
    if link:  # x[g, b] - y[i] <= 0
        A_link = np.zeros((len(link), n_var))
        for r, (j, i) in enumerate(link):
            A_link[r, j], A_link[r, n_x + i] = 1, -1
        cons.append(LinearConstraint(A_link, -np.inf, 0))
    c = np.array([coef(sensitivity, g, b) for g, b in choices] + [0.0] * len(onces))
    scale = np.max(np.abs(c)) or 1.0  # HiGHS tolerances are absolute: keep the objective O(1)
    res = milp(c / scale, constraints=cons, integrality=np.ones(n_var), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 1e-9})
    if res.status != 0 or res.x is None:
        raise _infeasible(budgets, cons[2:], rows, A_one, n_var)
    plan = {}
    for j, (g, b) in enumerate(choices):
        if res.x[j] > 0.5:
            for n in groups[g]:
                plan[n] = b
    return {n: plan[n] for n in names}


def plan_cost(budget: Budget, plan: dict[str, int]) -> float:
    return (budget.offset + sum(budget.cost[n][b] for n, b in plan.items())
            + sum(o.cost for o in budget.once if o.triggered(plan)))


def _infeasible(budgets, links, rows, A_one, n_var) -> EdgeqError:
    """Name the smallest value of each budget that any plan (within the others) reaches."""
    parts = []
    for k, budget in enumerate(budgets):
        others = [i for i in range(len(budgets)) if i != k]
        cons = [LinearConstraint(A_one, 1, 1), *links]
        if others:
            cons.append(LinearConstraint(rows[others], -np.inf,
                                         [budgets[i].limit - budgets[i].offset for i in others]))
        res = milp(rows[k], constraints=cons, integrality=np.ones(n_var), bounds=Bounds(0, 1))
        if res.status == 0 and res.fun + budget.offset > budget.limit:
            parts.append(f"{budget.name} <= {budget.limit:,.0f} (smallest achievable: "
                         f"{res.fun + budget.offset:,.0f})")
    what = "; ".join(parts) or "the budgets together"
    return EdgeqError(f"no bit-width plan meets {what}",
                      "raise the budget to at least the smallest achievable value, or drop ties/locks")
