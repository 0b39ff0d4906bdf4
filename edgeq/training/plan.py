"""The training plan: everything a training step needs that is known at compile time.

`build_plan(qgraph, spec, options)` decides, from the deployed quantized graph and the
spec:
- the loss input: the graph's output, or the input of a final QSoftmax (the step then
  stops before it: cross-entropy on the logits is the numerically sound form);
- the backward nodes, pruned: a node takes part only if an updated layer lies at or
  before it (its output's gradient is needed); the backward stops at the earliest
  updated layer, whose input gradient is never computed;
- for each backward node, which inputs need a gradient and the rule's integer constants
  (`rules.<op>.prepare`);
- the forward tensors the backward reads (`keep`): outputs under a clamp mask and the
  inputs of layers whose weights move; everything else is freed as in inference;
- the frozen prefix: tensors whose values no update can change (`frozen`), so a host
  can compute them once per sample (the step gives the same bytes either way).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node
from edgeq.training.gradient import DEFAULT_SEED
from edgeq.training.loss import loss_params
from edgeq.training.rules import rule
from edgeq.training.spec import LayerUpdate, resolve
from edgeq.training.update import fraction_bits, momentum_multiplier


@dataclass(frozen=True)
class TrainOptions:
    lr: float = 0.01                 # SGD learning rate (real units of the float model)
    momentum: float = 0.0            # 0: plain SGD, no velocity buffers (MCUNetV3's choice)
    weight_update: str = "master"    # "master" (int8 + int8 residual) | "stochastic" | "nearest"
    grad_bits: int = 16              # activation-gradient mantissas: 16 (|m| <= 2^14) or 8
    rounding: str = "nearest"        # gradient normalization: "nearest" | "stochastic"
    seed: int = DEFAULT_SEED         # the stochastic-rounding stream's seed

    def check(self) -> None:
        fraction_bits(self.weight_update)
        momentum_multiplier(self.momentum)
        if self.grad_bits not in (8, 16):
            raise EdgeqError(f"gradient width {self.grad_bits} bits", "use 8 or 16")
        if self.rounding not in ("nearest", "stochastic"):
            raise EdgeqError(f"unknown gradient rounding {self.rounding!r}", "use nearest or stochastic")
        if not self.lr > 0:
            raise EdgeqError(f"learning rate {self.lr} is not positive", "use a learning rate like 0.01")


@dataclass
class RuleInfo:
    """What a rule's compile-time half sees."""
    graph: Graph
    wants: tuple[bool, ...]
    update: LayerUpdate | None
    options: TrainOptions


@dataclass
class TrainPlan:
    graph: Graph
    updates: dict[str, LayerUpdate]
    options: TrainOptions
    logits: str
    loss: dict
    forward: list[Node]
    backward: list[Node]                 # in execution order (last node first)
    wants: dict[str, tuple[bool, ...]]
    consts: dict[str, dict]
    keep: list[str]
    frozen: set[str] = field(default_factory=set)

    def frozen_inputs(self) -> list[str]:
        """Frozen tensors that the rest of the step reads: the cut a host may precompute."""
        cut = []
        for node in self.forward:
            if node.outputs[0] in self.frozen:
                continue
            for name in node.inputs:
                if name in self.frozen and name not in cut:
                    cut.append(name)
        cut += [k for k in self.keep if k in self.frozen and k not in cut]
        return cut


def _loss_input(graph: Graph) -> tuple[str, list[Node]]:
    if len(graph.outputs) != 1:
        raise EdgeqError(f"training needs one model output (logits), the model has {len(graph.outputs)}",
                         "export the model with a single logits output")
    out = graph.outputs[0]
    producer = graph.producer_map().get(out)
    if producer is not None and producer.op == "QSoftmax":
        return producer.inputs[0], [n for n in graph.nodes if n is not producer]
    return out, list(graph.nodes)


def build_plan(qgraph: Graph, spec, options: TrainOptions | None = None) -> TrainPlan:
    options = options or TrainOptions()
    options.check()
    updates = {u.node: u for u in resolve(spec, qgraph)}
    logits, forward = _loss_input(qgraph)
    if qgraph.tensors[logits].q is None:
        raise EdgeqError(f"the logits {logits!r} carry no quantization parameters", "compile the model first")

    touched: set[str] = set()  # activations whose gradient some update needs
    for node in forward:
        if node.name in updates or any(i in touched for i in node.inputs if i):
            touched.update(node.outputs)
    if logits not in touched:
        raise EdgeqError("no updated layer lies before the logits", "train layers that feed the output")
    backward = [n for n in reversed(forward) if n.outputs[0] in touched]
    rules = {n.name: rule(n) for n in backward}  # names the first node on the path without a rule

    wants, consts, keep = {}, {}, []
    for node in backward:
        wants[node.name] = tuple(bool(i) and i in touched for i in node.inputs)
        info = RuleInfo(qgraph, wants[node.name], updates.get(node.name), options)
        consts[node.name] = rules[node.name].prepare(node, info)
        keep += [k for k in consts[node.name].get("keep", ()) if k not in keep]
    frozen = {t for n in forward for t in n.outputs if t not in touched} | set(qgraph.inputs)
    return TrainPlan(qgraph, updates, options, logits, loss_params(float(qgraph.tensors[logits].q.scale)),
                     forward, backward, wants, consts, keep, frozen)
