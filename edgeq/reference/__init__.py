"""The integer reference: one numpy function per `ai.edgeq` op, written loop-faithfully.

Each kernel is registered with `@implements("reference", "QConv")` and called as
`fn(node, *arrays)` where `arrays` are the node's inputs in order (activations and
constant parameters alike, as numpy integer arrays) and the result is the output array
(int8 for activations). Attributes come from `node.attrs`. The semantics are written
down in docs/semantics.md; `edgeq.intref.interpreter.run_reference` runs whole graphs.
Importing the package registers every kernel module in it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.ir import Node
from edgeq.ops import REGISTRY, lookup
from edgeq.ops.registry import import_submodules

Kernel = Callable[..., np.ndarray]


def load_all() -> dict[str, Kernel]:
    """The reference kernels by op (all registered when the package was imported)."""
    return {op: impls[0].fn for op, impls in REGISTRY.implemented("reference").items()}


def run_node(node: Node, arrays: list[np.ndarray]) -> np.ndarray:
    return lookup("reference", node.op, node.name).fn(node, *arrays)


import_submodules(__name__, __path__)  # last: the kernel modules import names defined above
