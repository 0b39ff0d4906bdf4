"""One small module per float op family; each turns float nodes into `ai.edgeq` nodes.

A rule is `fn(ctx: QuantContext, node: Node) -> None`, registered with `@rule("Conv")`.
It reads the float node (its inputs are already quantized: `ctx.qp(name)` gives their
QParams), adds integer constants and one or more `ai.edgeq` nodes to `ctx.out`, and
declares every int8 activation it writes with `ctx.add_act(name, shape, qparams)`.

Why one module per family: the rules differ in what they need (weights, tables,
reciprocals, softmax constants), and a reader checking one op against docs/semantics.md
should find it in one short file.
"""
from __future__ import annotations

from typing import Callable

RULES: dict[str, Callable] = {}


def rule(*ops: str):
    def register(fn):
        for op in ops:
            RULES[op] = fn
        return fn
    return register


def load_rules() -> dict[str, Callable]:
    # Importing the modules registers their rules (kept explicit so the order is obvious).
    from edgeq.quantization.rules import (conv_gemm, elementwise, lut, pool, prelu,  # noqa: F401
                                      shape_ops, softmax)
    return RULES
