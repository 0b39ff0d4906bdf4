"""`--train auto`: the biases, layers and channels to update under a memory budget.

The sparse-update recipe of MCUNetV3 (Lin et al. 2022, section 3.2) in three steps:

1. Contribution per candidate. Candidates are each layer's bias and each layer's weights
   restricted to a fraction r of its input channels (r in RATIOS; depthwise: channels).
   The paper measures each candidate's accuracy gain by fine-tuning it alone; we use the
   first-order proxy of that gain: one SGD step on parameters theta lowers the loss by
   lr * |dL/dtheta|^2 to first order, so a candidate's contribution is
   lr * sum over probe samples of its squared real gradient. The gradients come from the
   integer backward itself (every layer probed, nothing updated) on labelled samples, or,
   without labels, on labels drawn from the model's own softmax (the expected squared
   gradient is then the Fisher information, a label-free sensitivity). Within a layer
   the r-fraction keeps the input channels with the largest gradient energy, so the
   contribution of r is the sum over those channels (concave in r, as the paper found).
2. Cost per candidate, in bytes (edgeq.training.memory's model): a bias 4 bytes a
   channel; weights the layer's int8 copy in SRAM + the residual bytes of the selected
   part + its input activation's selected channels kept for the weight gradient. Reaching
   a layer has a cost of its own: the clamp masks kept from it to the output and the
   gradient buffers' peak, which only grow as the backward goes deeper.
3. Selection: an integer program (scipy.optimize.milp), maximizing the summed
   contributions subject to the budget, with binaries b[l] (bias), w[l, r] (at most one
   ratio per layer) and d[l] (the backward reaches layer l: d[l] >= b[l], w[l, r],
   d[l + 1]), and a continuous gradient peak P >= peak[l] d[l]. The paper assumes the
   same additivity of contributions; it holds well for small steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.training.gradient import Draws, add
from edgeq.training.loss import PROB_BITS, ce_gradient, probabilities_q14
from edgeq.training.memory import step_memory
from edgeq.training.plan import TrainOptions, build_plan
from edgeq.training.rules import rule
from edgeq.training.spec import LayerUpdate, input_channels, weighted_layers
from edgeq.training.step import Backward, TrainState, forward

RATIOS = (0.125, 0.25, 0.5, 1.0)


@dataclass
class Candidate:
    layer: str
    kind: str          # "bias" or "weights"
    ratio: float
    channels: tuple[int, ...] | None
    benefit: float
    cost: int


class _Probe(Backward):
    """A backward that records squared real gradients instead of updating."""

    def __init__(self, plan, state, env, energy):
        super().__init__(plan, state, env)
        self.energy = energy

    def update_bias(self, node, bsum, e):
        g = bsum.astype(np.float64) * 2.0 ** e
        self.energy.setdefault((node.name, "bias"), 0.0)
        self.energy[(node.name, "bias")] += float(np.sum(g * g))

    def update_weights(self, node, acc, e):
        s_x = float(np.ravel(self.plan.graph.tensors[node.inputs[0]].q.scale)[0])
        g = acc.astype(np.float64) * (s_x * 2.0 ** e)
        per_input = _per_input_channel(node, g * g)
        key = (node.name, "weights")
        self.energy[key] = self.energy.get(key, 0.0) + per_input


def _per_input_channel(node, sq: np.ndarray) -> np.ndarray:
    """Squared gradient summed per input channel (the unit a sparse update selects)."""
    if node.op == "QGemm":
        return sq.sum(axis=0)
    co, cig = sq.shape[:2]
    group = int(node.attr("group", 1))
    per = sq.reshape(co, cig, -1).sum(axis=2)  # [co, cig]
    out = np.zeros(cig * group)
    for c in range(co):
        g = c // (co // group)
        out[g * cig:(g + 1) * cig] += per[c]
    return out


def _probe_layers(qgraph: Graph, options: TrainOptions):
    """The longest suffix of weighted layers whose backward path has rules."""
    layers = weighted_layers(qgraph)
    for start in range(len(layers)):
        spec = [LayerUpdate(l.name, bias=True, weights=True) for l in layers[start:]]
        try:
            return build_plan(qgraph, spec, options)
        except EdgeqError:
            continue
    raise EdgeqError("no layer of this model can be trained (no backward rule on any path)",
                     "train a model made of Conv/Gemm, pooling, Add and data movement ops")


def gradient_energy(qgraph: Graph, x: np.ndarray, labels: np.ndarray | None, options: TrainOptions):
    """{(layer, "bias"): float, (layer, "weights"): per-input-channel array} summed over x."""
    plan = _probe_layers(qgraph, options)
    state = TrainState(plan)
    energy: dict = {}
    draws = Draws(options.seed ^ 0x5EED)
    for i in range(len(x)):
        env = forward(plan, state, x[i:i + 1])
        logits = env[plan.logits]
        if labels is None:  # a label drawn from the model's own prediction (Fisher)
            p = probabilities_q14(logits, plan.loss["input_mult"], plan.loss["input_left_shift"], plan.loss["diff_min"])
            u = int(draws.take(1)[0]) >> (32 - PROB_BITS)
            label = int(np.searchsorted(np.cumsum(p), u, side="right").clip(0, p.size - 1))
        else:
            label = int(labels[i])
        ctx = _Probe(plan, state, env, energy)
        m, e = ce_gradient(logits, label, plan.loss)
        grads = {plan.logits: ctx.normalize(m, e)}
        for node in plan.backward:
            g = grads.pop(node.outputs[0], None)
            if g is None:
                continue
            for j, gj in rule(node).backward(ctx, node, g).items():
                name = node.inputs[j]
                grads[name] = add(grads[name], gj, ctx.bits) if name in grads else gj
    return plan, energy


def _layer_costs(qgraph: Graph, names: list[str], options: TrainOptions):
    """Per layer: (mask bytes added by reaching it, gradient peak when reaching it)."""
    kept, peak = [], []
    for name in names:
        mem = step_memory(build_plan(qgraph, [LayerUpdate(name, bias=True)], options))
        kept.append(mem["kept_activations"])
        peak.append(mem["gradient_peak"])
    return kept, peak


def candidates(qgraph: Graph, plan, energy, options: TrainOptions) -> list[Candidate]:
    out = []
    lr = options.lr
    for name in plan.updates:
        node = qgraph.node_by_name(name)
        w = qgraph.const(node.inputs[1])
        velocity = 4 if options.momentum else 0
        out.append(Candidate(name, "bias", 1.0, None, lr * energy.get((name, "bias"), 0.0),
                             (4 + velocity) * int(w.shape[0])))
        per = np.asarray(energy.get((name, "weights"), np.zeros(input_channels(qgraph, node))))
        order = np.argsort(-per, kind="stable")
        ci = input_channels(qgraph, node)
        x_bytes = int(np.prod(qgraph.tensors[node.inputs[0]].shape, dtype=np.int64))
        residual = 1 if options.weight_update == "master" else 0
        for r in RATIOS:
            k = max(1, int(round(r * ci)))
            chosen = tuple(sorted(int(c) for c in order[:k]))
            selected = int(np.ceil(w.size * k / ci))
            cost = int(w.size) + selected * (residual + velocity) + int(np.ceil(x_bytes * k / ci))
            out.append(Candidate(name, "weights", r, None if k == ci else chosen,
                                 lr * float(per[order[:k]].sum()), cost))
    return out


def solve(names: list[str], cands: list[Candidate], kept: list[int], peak: list[int], budget: int):
    """The integer program of the module doc; returns the chosen candidates."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    nc, nl = len(cands), len(names)
    index = {n: i for i, n in enumerate(names)}
    nv = nc + nl + 1  # candidates, d[l], P
    c = np.zeros(nv)
    c[:nc] = [-cd.benefit for cd in cands]
    rows, lo, hi = [], [], []

    def row(entries, low, high):
        r = np.zeros(nv)
        for k, v in entries:
            r[k] += v
        rows.append(r)
        lo.append(low)
        hi.append(high)

    mask_inc = [kept[i] - (kept[i + 1] if i + 1 < nl else 0) for i in range(nl)]
    row([(k, cd.cost) for k, cd in enumerate(cands)] + [(nc + i, mask_inc[i]) for i in range(nl)] + [(nv - 1, 1)],
        -np.inf, budget)
    for name in names:
        ks = [k for k, cd in enumerate(cands) if cd.layer == name and cd.kind == "weights"]
        row([(k, 1) for k in ks], -np.inf, 1)
    for k, cd in enumerate(cands):
        row([(nc + index[cd.layer], 1), (k, -1)], 0, np.inf)
    for i in range(nl - 1):
        row([(nc + i + 1, 1), (nc + i, -1)], 0, np.inf)  # reaching an earlier layer reaches the later ones
    for i in range(nl):
        row([(nv - 1, 1), (nc + i, -peak[i])], 0, np.inf)
    integrality = np.ones(nv)
    integrality[-1] = 0
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=integrality,
               bounds=Bounds(np.zeros(nv), np.r_[np.ones(nv - 1), np.inf]))
    if res.x is None:
        raise EdgeqError(f"the training budget of {budget} bytes admits no selection", "raise --train-budget")
    return [cd for k, cd in enumerate(cands) if res.x[k] > 0.5]


def select(qgraph: Graph, budget: int, x: np.ndarray, labels: np.ndarray | None = None,
           options: TrainOptions | None = None) -> tuple[list[LayerUpdate], dict]:
    """The updates `--train auto` chooses for `budget` bytes (memory.step_memory's total),
    from int8 samples x [N, ...] (with labels if known); returns (updates, report)."""
    options = options or TrainOptions()
    plan, energy = gradient_energy(qgraph, np.asarray(x), labels, options)
    names = list(plan.updates)
    cands = candidates(qgraph, plan, energy, options)
    kept, peak = _layer_costs(qgraph, names, options)
    chosen = solve(names, cands, kept, peak, int(budget))
    if not chosen:
        cheapest = min(kept[-1] + peak[-1] + cd.cost for cd in cands if cd.layer == names[-1])
        raise EdgeqError(f"the training budget of {budget} bytes fits no update (the cheapest needs {cheapest})",
                         f"raise --train-budget to at least {cheapest}")
    updates = []
    for name in names:
        mine = [cd for cd in chosen if cd.layer == name]
        if not mine:
            continue
        weights = next((cd for cd in mine if cd.kind == "weights"), None)
        updates.append(LayerUpdate(name, bias=any(cd.kind == "bias" for cd in mine), weights=weights is not None,
                                   channels=weights.channels if weights else None))
    final = step_memory(build_plan(qgraph, updates, options))
    report = {"budget": int(budget), "memory": final, "probe_samples": int(len(x)),
              "benefit": float(sum(cd.benefit for cd in chosen)),
              "labels": "given" if labels is not None else "drawn from the model (Fisher)",
              "candidates": [vars(cd) | {"channels": None if cd.channels is None else len(cd.channels)} for cd in cands],
              "chosen": [{"layer": u.node, "bias": u.bias, "weights": u.weights,
                          "channels": None if u.channels is None else len(u.channels)} for u in updates]}
    if final["total"] > budget:
        raise AssertionError(f"auto: chosen updates need {final['total']} bytes > budget {budget}")
    return updates, report
