"""Python mirror of the `eq_<op>_s8_scratch_size` companions in eq_kernels.h, for the
memory planner: bytes of scratch a node's kernel needs beside its input and output.

Every portable kernel works in place over its operands, so all sizes are 0 today; when a
kernel variant gains a scratch buffer (e.g. an im2col conv), its formula goes here and in
the header together, and tests/test_c_kernels.py checks the two agree.
"""
from __future__ import annotations

from edgeq.ir import Graph, Node

from edgeq.runtime_c import KERNELS


def scratch_size(node: Node, graph: Graph | None = None) -> int:
    """Scratch bytes for `node` (an ai.edgeq op); 0 for QReshape (an alias)."""
    if node.op not in KERNELS:
        raise KeyError(f"no C kernel for {node.op}")
    return 0
