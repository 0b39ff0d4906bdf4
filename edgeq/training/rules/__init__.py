"""Backward rules: one small module per op family, the integer counterparts of edgeq/intref.

Each rule is the op registry's "backward" stage implementation of its op, registered with
`@implements("backward", "QConv", prepare=prepare)` on its run-time half:

- `prepare(node, info) -> dict` (the registration's `prepare=`) runs at compile time
  (float allowed: scales, learning rate) and returns the integer constants the run-time
  half needs (dyadic multipliers, exponent offsets, the shifts that keep every
  accumulation inside int32). `info` is a `edgeq.training.plan.RuleInfo`: the graph, which
  inputs need a gradient, the layer's update choice and the options.
- `backward(ctx, node, g) -> {input index: Grad}` runs in the training step: `g` is the
  gradient of the node's output (an `edgeq.training.gradient.Grad`), `ctx` a
  `edgeq.training.step.Backward` (kept forward tensors, current parameters, the
  normalizer and the in-place update). It returns the gradients of the inputs
  `ctx.wants(node, i)` asks for, and applies the node's own updates before returning.

`rule(node)` finds a node's rule, or raises the registry's EdgeqError naming the op and
the node. docs/training.md writes every rule down with its integer formula and overflow bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgeq.ops import REGISTRY, lookup
from edgeq.ops.registry import import_submodules


@dataclass(frozen=True)
class Rule:
    prepare: Callable
    backward: Callable


def rule(node) -> Rule:
    """The backward rule of a node (EdgeqError naming op and node when there is none)."""
    impl = lookup("backward", node.op, node.name)
    return Rule(impl.meta["prepare"], impl.fn)


def load_rules() -> dict[str, Rule]:
    """Every registered rule by op (the registry's "backward" column)."""
    return {op: Rule(impls[0].meta["prepare"], impls[0].fn) for op, impls in REGISTRY.implemented("backward").items()}


import_submodules(__name__, __path__)
