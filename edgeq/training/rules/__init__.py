"""Backward rules: one small module per op family, the integer counterparts of edgeq/intref.

A rule has two halves, registered together with `@rule("QConv", ...)`:

- `prepare(node, info) -> dict` runs at compile time (float allowed: scales, learning
  rate) and returns the integer constants the run-time half needs (dyadic multipliers,
  exponent offsets, the shifts that keep every accumulation inside int32). `info` is a
  `edgeq.training.plan.RuleInfo`: the graph, which inputs need a gradient, the layer's
  update choice and the options.
- `backward(ctx, node, g) -> {input index: Grad}` runs in the training step: `g` is the
  gradient of the node's output (an `edgeq.training.gradient.Grad`), `ctx` a
  `edgeq.training.step.Backward` (kept forward tensors, current parameters, the
  normalizer and the in-place update). It returns the gradients of the inputs
  `ctx.wants(node, i)` asks for, and applies the node's own updates before returning.

docs/training.md writes every rule down with its integer formula and overflow bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Rule:
    prepare: Callable
    backward: Callable


RULES: dict[str, Rule] = {}


def rule(*ops: str, prepare: Callable):
    def register(fn):
        for op in ops:
            RULES[op] = Rule(prepare, fn)
        return fn
    return register


def load_rules() -> dict[str, Rule]:
    from edgeq.training.rules import add, conv, pool, requant, shape  # noqa: F401
    return RULES
