"""The integer reference: one numpy function per `ai.edgeq` op, written loop-faithfully.

Each kernel is registered with `@kernel("QConv")` and called as
`fn(node, *arrays)` where `arrays` are the node's inputs in order (activations and
constant parameters alike, as numpy integer arrays) and the result is the output array
(int8 for activations). Attributes come from `node.attrs`. The semantics are written
down in docs/semantics.md; `edgeq.intref.interpreter.run_reference` runs whole graphs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.ir import Node

Kernel = Callable[..., np.ndarray]
REGISTRY: dict[str, Kernel] = {}
_loaded = False  # a kernel module imported on its own must not stop the others loading


def kernel(op: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        REGISTRY[op] = fn
        return fn
    return register


def load_all() -> dict[str, Kernel]:
    """Import every kernel module so the registry is complete."""
    import importlib
    import pkgutil
    import edgeq.intref as pkg
    global _loaded
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "interpreter":
            importlib.import_module(f"edgeq.intref.{info.name}")
    _loaded = True
    return REGISTRY


def run_node(node: Node, arrays: list[np.ndarray]) -> np.ndarray:
    if not _loaded:
        load_all()
    fn = REGISTRY.get(node.op)
    if fn is None:
        raise NotImplementedError(f"no integer reference kernel for {node.op}")
    return fn(node, *arrays)
