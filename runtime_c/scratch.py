"""Python mirror of the `eq_<op>_s8_scratch_size` companions in eq_kernels.h, for the
memory planner: bytes of scratch a node's kernel uses beside its input and output.

QConv and QGemm take an optional scratch buffer for their im2col fast path (one patch of
K int16 values, K = the dot-product length, plus 4 bytes of alignment slack); with NULL
they run the direct loops, with the same results. Every other kernel needs none.
tests/test_c_kernels.py checks these formulas against the C functions.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph, Node

from edgeq.runtime_c import KERNELS

ALIGN_SLACK = 4  # the kernels round the scratch pointer up to a 4-byte boundary


def _weight_shape(node: Node, graph: Graph | None) -> tuple[int, ...]:
    if graph is None or len(node.inputs) < 2 or node.inputs[1] not in graph.tensors:
        raise ValueError(f"scratch_size({node.name}): needs the graph to read the weight shape")
    return tuple(int(d) for d in graph.tensors[node.inputs[1]].shape)


def scratch_size(node: Node, graph: Graph | None = None) -> int:
    """Scratch bytes for `node` (an ai.edgeq op); 0 for every op without a fast path."""
    if node.op not in KERNELS:
        raise KeyError(f"no C kernel for {node.op}")
    if node.op in ("QConv", "QGemm"):
        w = _weight_shape(node, graph)
        k = int(np.prod(w[1:], dtype=np.int64))  # Ci/group * kH * kW, or K
        return 2 * k + ALIGN_SLACK
    return 0
