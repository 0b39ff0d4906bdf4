"""One training step on the integer reference: the golden semantics of on-device training.

    plan = build_plan(qgraph, "last:2", TrainOptions(lr=0.05))
    state = TrainState(plan)                       # trained parameters, residuals, draws
    logits = train_step(plan, state, x_int8, label) # forward, loss gradient, backward+update
    trained = state.to_graph()                     # the deployed graph with learned weights

A step, for one int8 sample [1, ...] and an integer label:
1. forward: every node on the integer reference kernels (edgeq/intref), the updated
   layers reading their current parameters from the state; the tensors in `plan.keep`
   stay alive, everything else is freed after its last reader as in inference;
2. loss: the softmax cross-entropy gradient of the int8 logits (loss.py);
3. backward over `plan.backward` (last node first): each rule takes its output's
   gradient and returns its inputs' gradients; a layer's updates are applied in place
   inside its rule, right after its gradients are known (operator reordering), so no
   weight gradient is ever stored and an output gradient is freed as soon as its node
   is done. A tensor read by several nodes sums their gradients (gradient.add, in
   backward order) before its producer runs.
Only integers flow through the step; float appears only in `Grad.real()` for hosts.
"""
from __future__ import annotations

import numpy as np

from edgeq.reference import load_all, run_node
from edgeq.ir import Graph, Node
from edgeq.training.gradient import Draws, Grad, add, i64, normalize, round_shift
from edgeq.training.loss import ce_gradient
from edgeq.training.plan import TrainPlan
from edgeq.training.rules import rule
from edgeq.training import update as sgd


class TrainState:
    """What a training step changes: the updated layers' parameters (copies of the
    graph's), the master residuals, the momentum velocities and the draw counter."""

    def __init__(self, plan: TrainPlan):
        self.plan = plan
        g = plan.graph
        self.weights: dict[str, np.ndarray] = {}
        self.residuals: dict[str, np.ndarray] = {}
        self.biases: dict[str, np.ndarray] = {}
        self.velocity: dict[tuple[str, str], np.ndarray] = {}
        for name, u in plan.updates.items():
            node = g.node_by_name(name)
            w = g.const(node.inputs[1])
            if u.weights:
                self.weights[name] = np.array(w, dtype=np.int8)
                if plan.consts[name]["frac_bits"]:
                    self.residuals[name] = np.zeros(w.shape, dtype=np.int8)
            if u.bias:
                b = g.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
                self.biases[name] = np.zeros(w.shape[0], np.int32) if b is None else np.array(b, np.int32)
        self.draws = Draws(plan.options.seed)
        self.steps = 0

    def params(self, node: Node, arrays: list) -> list:
        """The node's input arrays with the state's current weights and bias."""
        arrays = list(arrays)
        if node.name in self.weights:
            arrays[1] = self.weights[node.name]
        if node.name in self.biases:
            while len(arrays) < 3:
                arrays.append(None)
            arrays[2] = self.biases[node.name]
        return arrays

    def to_graph(self) -> Graph:
        """A copy of the deployed graph holding the learned parameters."""
        g = self.plan.graph.copy()
        for name, w in self.weights.items():
            g.tensors[g.node_by_name(name).inputs[1]].data = w.copy()
        for name, b in self.biases.items():
            node = g.node_by_name(name)
            if len(node.inputs) > 2 and node.inputs[2]:
                g.tensors[node.inputs[2]].data = b.copy()
            else:
                node.inputs[2:3] = [g.add_const(f"{name}_bias", b.copy())]
        return g


class Backward:
    """What a backward rule sees during one step (edgeq/training/rules)."""

    def __init__(self, plan: TrainPlan, state: TrainState, env: dict[str, np.ndarray]):
        self.plan, self.state, self.env = plan, state, env
        opts = plan.options
        self.bits, self.rounding = opts.grad_bits, opts.rounding

    def consts(self, node: Node) -> dict:
        return self.plan.consts[node.name]

    def wants(self, node: Node, i: int) -> bool:
        return self.plan.wants[node.name][i]

    def kept(self, name: str) -> np.ndarray:
        return self.env[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.plan.graph.tensors[name].shape)

    def weight(self, node: Node) -> np.ndarray:
        return self.state.weights.get(node.name, self.plan.graph.const(node.inputs[1]))

    def update(self, node: Node):
        return self.plan.updates.get(node.name)

    def normalize(self, acc, e: int) -> Grad:
        return normalize(acc, e, self.bits, self.rounding, self.state.draws)

    def round(self, m, r: int) -> np.ndarray:
        return round_shift(m, r, self.rounding, self.state.draws)

    def _velocity(self, key, delta, c) -> np.ndarray:
        if "mu" not in c:
            return delta
        v = sgd.momentum(self.state.velocity.get(key, np.zeros(delta.shape, np.int64)), delta, *c["mu"])
        self.state.velocity[key] = v
        return v

    def update_bias(self, node: Node, bsum, e: int) -> None:
        c = self.consts(node)
        delta = sgd.step(bsum, c["bmult"], c["bshift"], e, "nearest", None)
        delta = self._velocity((node.name, "bias"), delta, c)
        self.state.biases[node.name] = sgd.apply_bias(self.state.biases[node.name], delta, c["blimit"])

    def update_weights(self, node: Node, acc, e: int) -> None:
        c = self.consts(node)
        w = self.state.weights[node.name]
        per_row = (-1,) + (1,) * (w.ndim - 1)
        rounding = "stochastic" if self.plan.options.weight_update == "stochastic" else "nearest"
        delta = sgd.step(acc, i64(c["wmult"]).reshape(per_row), i64(c["wshift"]).reshape(per_row), e,
                         rounding, self.state.draws)
        delta = self._velocity((node.name, "weights"), np.where(c["select"], delta, 0), c)
        self.state.weights[node.name], res = sgd.apply_weights(
            w, self.state.residuals.get(node.name), delta, c["select"], c["frac_bits"], c["qmax"])
        if res is not None:
            self.state.residuals[node.name] = res


def forward(plan: TrainPlan, state: TrainState, x: np.ndarray | None,
            frozen: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run the forward pass; returns the kept tensors and the logits. With `frozen`
    (the tensors of plan.frozen_inputs() for this sample) the frozen prefix is skipped."""
    load_all()
    g = plan.graph
    env = {}
    if x is not None:
        x = np.asarray(x)
        if x.dtype != np.int8 or x.shape[0] != 1:
            raise ValueError(f"train_step: input must be int8 [1, ...], got {x.dtype} {x.shape}")
        env[g.inputs[0]] = x
    elif frozen is None:
        raise ValueError("train_step: give the input x or its frozen tensors")
    if frozen is not None:
        missing = [k for k in plan.frozen_inputs() if k not in frozen]
        if missing:
            raise KeyError(f"train_step: frozen tensors {missing} not given")
        env.update(frozen)
    keep = set(plan.keep) | {plan.logits}
    last: dict[str, int] = {}
    for i, node in enumerate(plan.forward):
        for name in node.inputs:
            last[name] = i
    for i, node in enumerate(plan.forward):
        if frozen is not None and node.outputs[0] in plan.frozen:
            continue
        arrays = [None if not n else env[n] if n in env else g.const(n) for n in node.inputs]
        env[node.outputs[0]] = run_node(node, state.params(node, arrays))
        for name in node.inputs:
            if last.get(name) == i and name not in keep:
                env.pop(name, None)
    return env


def frozen_forward(plan: TrainPlan, x: np.ndarray) -> dict[str, np.ndarray]:
    """The tensors of plan.frozen_inputs() for a batch x [N, ...]: no update can change
    them, so a host may compute them once and pass each sample's slice to train_step."""
    load_all()
    g = plan.graph
    env = {g.inputs[0]: np.asarray(x)}
    for node in plan.forward:
        if node.outputs[0] in plan.frozen:
            env[node.outputs[0]] = run_node(node, [None if not n else env[n] if n in env else g.const(n)
                                                   for n in node.inputs])
    return {k: env[k] for k in plan.frozen_inputs()}


def predict(plan: TrainPlan, state: TrainState, frozen: dict[str, np.ndarray], chunk: int = 500) -> np.ndarray:
    """int8 logits of a batch with the state's current parameters, from the batch's frozen
    tensors (frozen_forward): what the trained model answers, without its frozen prefix."""
    load_all()
    g = plan.graph
    n = len(next(iter(frozen.values())))
    out = []
    for lo in range(0, n, chunk):
        env = {k: v[lo:lo + chunk] for k, v in frozen.items()}
        for node in plan.forward:
            if node.outputs[0] not in plan.frozen:
                arrays = [None if not a else env[a] if a in env else g.const(a) for a in node.inputs]
                env[node.outputs[0]] = run_node(node, state.params(node, arrays))
        out.append(env[plan.logits])
    return np.concatenate(out)


def train_step(plan: TrainPlan, state: TrainState, x: np.ndarray | None, label: int,
               frozen: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One SGD step on one sample, in place on `state`; returns the int8 logits of the
    forward pass (before the update). x may be None when `frozen` holds the sample's
    frozen tensors."""
    env = forward(plan, state, x, frozen)
    logits = env[plan.logits]
    m, e = ce_gradient(logits, int(label), plan.loss)
    ctx = Backward(plan, state, env)
    grads: dict[str, Grad] = {plan.logits: ctx.normalize(m, e)}
    for node in plan.backward:
        g = grads.pop(node.outputs[0], None)
        if g is None:  # an output no loss depends on
            continue
        for i, gi in rule(node).backward(ctx, node, g).items():
            name = node.inputs[i]
            grads[name] = add(grads[name], gi, ctx.bits, ctx.rounding, state.draws) if name in grads else gi
    state.steps += 1
    return logits
