"""The op registry: every op declared once, every per-op stage registered in one style.

    from edgeq.ops import implements, lookup, decl_of

    @implements("reference", "QSoftmax")            # a stage registers an implementation
    def qsoftmax(node, x): ...

    lookup("reference", node.op, node.name).fn      # EdgeqError naming op, node and stage if none
    decl_of(node).weighted                           # a declared property instead of a list of names
    holds("channel_scale_commutes", node, graph)     # a property that may depend on the node

Declarations: float_ops.py (canonical float ops), integer_ops.py (ai.edgeq ops). Stages:
stages.py. The completeness table (`edgeq ops`): table.py. How to add an op or a stage:
docs/architecture.md.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgeq.ir import QDOMAIN
from edgeq.ops import float_ops, integer_ops, stages  # noqa: F401  (declare the ops and the stages)
from edgeq.ops.registry import REGISTRY, REQUIRED, Attr, Impl, Input, OpDecl, Stage, missing

FLOAT_OPS: dict[str, OpDecl] = REGISTRY.ops("")         # canonical float op name -> declaration
INTEGER_OPS: dict[str, OpDecl] = REGISTRY.ops(QDOMAIN)  # ai.edgeq op name -> declaration
STAGES: dict[str, Stage] = REGISTRY.stages


def implements(stage: str, *ops: str, **meta: Any) -> Callable[[Callable], Callable]:
    """Register the decorated function as `stage`'s implementation of each op in `ops`.
    `meta` carries what the stage needs to know about it (e.g. emits=, kernel=)."""
    def register(fn: Callable) -> Callable:
        for op in ops:
            REGISTRY.register(stage, op, fn, meta)
        return fn
    return register


def implementations(stage: str, op: str) -> list[Impl]:
    return REGISTRY.implementations(stage, op)


def lookup(stage: str, op: str, node: str | None = None) -> Impl:
    """The one implementation of `op` in `stage` (stages with variants choose among
    `implementations` themselves); EdgeqError naming the op, the node and the stage."""
    impls = REGISTRY.implementations(stage, op)
    if not impls:
        raise missing(REGISTRY.stage(stage), op, node)
    return impls[0]


def decl_of(node) -> OpDecl | None:
    """The declaration of a node's op (None for an op edgeq does not know)."""
    return REGISTRY.decl(node.op, node.domain)


def holds(prop: str, node, graph=None) -> bool:
    """Whether a node's op has a declared property (False for undeclared ops)."""
    decl = decl_of(node)
    return decl is not None and decl.holds(prop, node, graph)


def clamp_of(node) -> tuple[float, float] | None:
    """(lo, hi) when the node is an activation clamp (Relu, Clip), else None."""
    decl = decl_of(node)
    return None if decl is None or decl.as_clamp is None else decl.as_clamp(node)


def macs(node, graph) -> int:
    """Multiply-accumulates of one sample (batch 1) of a weighted node, 0 for any other:
    output elements times the weights each one reads."""
    if not holds("weighted", node):
        return 0
    w, out = graph.tensors[node.inputs[1]], graph.tensors[node.outputs[0]]
    return int(np.prod(out.shape[1:], dtype=np.int64)) * int(np.prod(w.shape[1:], dtype=np.int64))


def float_fn(node) -> Callable:
    """The float64 numpy function of an elementwise unary float node: y = f(x)."""
    decl = decl_of(node)
    if decl is None or decl.float_fn is None:
        raise KeyError(f"{node.op} declares no float function")
    return lambda x: decl.float_fn(x, node.attrs)


__all__ = ["implements", "implementations", "lookup", "decl_of", "holds", "clamp_of", "macs", "float_fn",
           "FLOAT_OPS", "INTEGER_OPS", "STAGES", "REGISTRY", "REQUIRED", "Attr", "Input", "OpDecl",
           "Stage", "Impl"]
