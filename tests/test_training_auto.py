"""`--train auto`: the selection fits the budget, is optimal for its model, grows with the
budget, and fails clearly when nothing fits."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.training import TrainOptions, build_plan
from edgeq.training.auto import Candidate, select, solve
from edgeq.training.memory import step_memory

from tests._train_graphs import small_net


@pytest.fixture(scope="module")
def net():
    return small_net()


def test_selection_fits_the_budget_and_grows_with_it(net):
    qgraph, x, labels = net
    opts = TrainOptions(lr=0.02)
    gained = []
    for budget in (3000, 8000, 40000):
        updates, report = select(qgraph, budget, x, labels, opts)
        total = step_memory(build_plan(qgraph, updates, opts))["total"]
        assert total <= budget and report["memory"]["total"] == total
        assert report["chosen"] and report["candidates"]
        gained.append(report["benefit"])
    assert gained == sorted(gained) and gained[-1] > gained[0]


def test_a_budget_that_fits_nothing_names_the_minimum(net):
    qgraph, x, labels = net
    with pytest.raises(EdgeqError, match="fits no update") as err:
        select(qgraph, 16, x, labels, TrainOptions())
    assert "--train-budget" in err.value.fix


def test_without_labels_the_model_draws_its_own_deterministically(net):
    qgraph, x, _ = net
    a = select(qgraph, 8000, x, None, TrainOptions())
    b = select(qgraph, 8000, x, None, TrainOptions())
    assert a[0] == b[0] and "Fisher" in a[1]["labels"]


def test_the_integer_program_matches_exhaustive_search():
    """Three layers in a chain, random benefits and costs: milp's choice is the best
    feasible subset under the same cost model (reaching a layer reaches the later ones)."""
    rng = np.random.default_rng(4)
    names = ["a", "b", "c"]
    cands = []
    for n in names:
        cands.append(Candidate(n, "bias", 1.0, None, float(rng.uniform(0, 5)), int(rng.integers(10, 60))))
        for r in (0.5, 1.0):
            cands.append(Candidate(n, "weights", r, None, float(rng.uniform(0, 10)) * r, int(rng.integers(50, 300) * r)))
    kept, peak = [300, 180, 40], [250, 200, 20]
    for budget in (100, 400, 700, 1200):
        chosen = solve(names, cands, kept, peak, budget)

        def cost(sel):
            reached = [i for i, n in enumerate(names) if any(c.layer == n for c in sel)]
            if not reached:
                return 0
            first = min(reached)
            return sum(c.cost for c in sel) + kept[first] + peak[first]

        best = 0.0
        for k in range(len(cands) + 1):
            for sel in itertools.combinations(cands, k):
                if any(sum(c.layer == n and c.kind == "weights" for c in sel) > 1 for n in names):
                    continue
                if cost(sel) <= budget:
                    best = max(best, sum(c.benefit for c in sel))
        assert cost(chosen) <= budget
        assert sum(c.benefit for c in chosen) == pytest.approx(best)
