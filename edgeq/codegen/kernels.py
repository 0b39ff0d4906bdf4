"""The C stage's kernel variants: which runtime_c function runs a node, and its scratch.

Every C implementation of an integer op is an emitter registered with the kernel it calls:

    @implements("c", "QConv", kernel=CKernel("eq_conv2d_s8", weight_bits=(5, 8), scratch=im2col_scratch))
    @implements("c", "QConv", kernel=CKernel("eq_conv2d_s4", weight_bits=(2, 4), weight_storage="int4x2",
                                             scratch=im2col_scratch))
    def conv(c, node, kernel): ...

A target offers a `KernelChoice` (the ISA features of its CPU beyond portable C99, the
activation layout of the build); `choose` keeps the variants whose conditions the node and
the choice meet and returns the one for the CPU's most specific feature, so an optimised
kernel (issue 17: channels-last, DSP, MVE) is added by registering it, and the portable
kernels stay the fallback and the second oracle. A build whose layout is "nhwc" prefers
the channels-last kernels (ops_nhwc.py) and falls back to the NCHW ones where no
channels-last kernel fits the node; layout.py inserts the transposes between them.

A kernel may apply to some nodes only (`when`: e.g. the 1x1 pointwise kernel); among the
variants of equal rank the first registered wins, so the specialised ones are registered
before the general one. Nodes the memory plan left without scratch (`KernelChoice.direct`)
get a variant that runs without it: a kernel whose scratch is optional (the NCHW convs take
NULL) or one that needs none (the portable channels-last kernels).

Scratch: the Python mirror of each kernel's `<fn>_scratch_size` companion in eq_kernels.h
(tests/test_c_kernels.py checks them against the C functions), for the memory planner.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node
from edgeq.ops import REGISTRY, Impl, decl_of
from edgeq.ops.registry import missing
from edgeq.runtime_c.packing import isa_for_cpu

ALIGN_SLACK = 4  # the kernels round the scratch pointer up to a 4-byte boundary
WEIGHT_STORAGES = ("int8", "int4x2")


@dataclass(frozen=True)
class CKernel:
    """One C kernel of an op. function: the eq_kernels.h function the emitted call names.
    weight_bits: (fewest, most) bits of the weights it reads (None: the op has none).
    weight_storage: int8, or int4x2 (two per byte, low nibble first, rows padded).
    isa: "portable" (C99), or the CPU feature it needs, e.g. "dsp" (Armv7E-M SIMD on
    Cortex-M4/M7/M33), "mve" (Helium, Cortex-M55), "neon". layout: the activation layout it
    reads and writes. scratch: bytes it uses beside input and output (None: none);
    scratch_optional: it runs (slower, same bytes) when given NULL instead. when: the
    nodes it applies to (None: every node of the op)."""
    function: str
    weight_bits: tuple[int, int] | None = None
    weight_storage: str = "int8"
    isa: str = "portable"
    layout: str = "nchw"
    scratch: Callable[[Node, Graph | None], int] | None = None
    scratch_optional: bool = False
    when: Callable[[Node, Graph | None], bool] | None = None

    def __post_init__(self):
        if self.weight_storage not in WEIGHT_STORAGES:
            raise ValueError(f"{self.function}: weight_storage {self.weight_storage!r} is not one of {WEIGHT_STORAGES}")

    def __str__(self) -> str:
        return self.function

    def fits(self, node: Node, graph: Graph | None, bits: int | None, choice: "KernelChoice") -> bool:
        if self.layout not in ("nchw", choice.layout) or (self.isa != "portable" and self.isa not in choice.isa):
            return False
        if self.weight_bits is not None and bits is not None and not self.weight_bits[0] <= bits <= self.weight_bits[1]:
            return False
        if self.when is not None and not self.when(node, graph):
            return False
        if node.name in choice.nchw_nodes and self.layout != "nchw":
            return False
        if node.name in choice.direct and self.scratch is not None and not self.scratch_optional:
            return int(self.scratch(node, graph)) == 0
        return True


@dataclass(frozen=True)
class KernelChoice:
    """What a build offers the kernels: CPU features in increasing preference, the preferred
    activation layout (NCHW kernels stay the fallback of an "nhwc" build), the nodes that
    run without scratch (the memory plan's `direct` list), the nodes kept NCHW between
    NCHW neighbours (layout.py), and whether the layers whose kernels have an always-inline
    body are compiled from it for their shape (faster, one copy of the code per layer) or
    call the shared kernel (less flash; the M55's depthwise 3x3 is specialised either way)."""
    isa: tuple[str, ...] = ()
    layout: str = "nchw"
    direct: frozenset[str] = frozenset()
    nchw_nodes: frozenset[str] = frozenset()
    specialise: bool = True

    def rank(self, kernel: CKernel) -> tuple[int, int]:
        return (kernel.layout == self.layout, 0 if kernel.isa == "portable" else 1 + self.isa.index(kernel.isa))

    def without_scratch(self, nodes) -> "KernelChoice":
        return replace(self, direct=frozenset(nodes))

    def keeping_nchw(self, nodes) -> "KernelChoice":
        return replace(self, nchw_nodes=frozenset(nodes))

    def shared(self) -> "KernelChoice":
        """The same kernels, called rather than specialised per layer (a build short of flash)."""
        return replace(self, specialise=False)


def choice_for_cpu(cpu: str) -> KernelChoice:
    """The kernels a target CPU gets: channels-last with the DSP (Cortex-M4/M7/M33) or MVE
    (Cortex-M55) variants; any other CPU (the host, an M0/M3) the portable NCHW kernels."""
    isa = isa_for_cpu(cpu)
    return PORTABLE if isa == "c" else KernelChoice((isa,), "nhwc")


PORTABLE = KernelChoice()
PORTABLE_NHWC = KernelChoice((), "nhwc")  # the channels-last kernels' portable C (a second oracle)


def weight_bits(node: Node, graph: Graph | None) -> int | None:
    """The bits of a weighted node's weights (QParams.bits; 8 when unknown), else None."""
    decl = decl_of(node)
    if decl is None or not decl.weighted:
        return None
    t = graph.tensors.get(node.inputs[1]) if graph is not None and len(node.inputs) > 1 else None
    return t.q.bits if t is not None and t.q is not None else 8


def choose(node: Node, graph: Graph | None, choice: KernelChoice = PORTABLE) -> Impl:
    """The C implementation that runs `node` in a build offering `choice` (module doc)."""
    impls = REGISTRY.implementations("c", node.op)
    if not impls:
        raise missing(REGISTRY.stage("c"), node.op, node.name)
    bits = weight_bits(node, graph)
    fits = [i for i in impls if i.meta["kernel"].fits(node, graph, bits, choice)]
    if not fits:
        have = ", ".join(f"{k} ({k.isa}, {k.layout}, weights {k.weight_bits})"
                         for k in (i.meta["kernel"] for i in impls))
        wants = f"{bits}-bit weights, " if bits is not None else ""
        raise EdgeqError(f"no C kernel for op {node.op} (node {node.name!r}) with {wants}ISA "
                         f"{'/'.join(choice.isa) or 'portable'} and layout {choice.layout} (kernels: {have})",
                         REGISTRY.stage("c").fix)
    return max(fits, key=lambda i: choice.rank(i.meta["kernel"]))  # the first registered among equals


def kernel_of(node: Node, graph: Graph | None, choice: KernelChoice = PORTABLE) -> CKernel:
    return choose(node, graph, choice).meta["kernel"]


def scratch_size(node: Node, graph: Graph | None = None, choice: KernelChoice = PORTABLE) -> int:
    """Scratch bytes of the kernel that runs `node` (0 for a kernel without scratch)."""
    kernel = kernel_of(node, graph, choice)
    return 0 if kernel.scratch is None else int(kernel.scratch(node, graph))


def im2col_scratch(node: Node, graph: Graph | None) -> int:
    """QConv / QGemm: one patch of K int16 values (K = Ci/group * kH * kW, or the Gemm's K)
    for the im2col fast path, plus the alignment slack; with NULL the kernels run their
    direct loops, with the same results."""
    if graph is None or len(node.inputs) < 2 or node.inputs[1] not in graph.tensors:
        raise ValueError(f"scratch_size({node.name}): needs the graph to read the weight shape")
    w = tuple(int(d) for d in graph.tensors[node.inputs[1]].shape)
    return 2 * int(np.prod(w[1:], dtype=np.int64)) + ALIGN_SLACK


def portable_functions(bits: int = 8) -> dict[str, str]:
    """{op: the portable kernel function for weights of `bits` bits} (weightless ops: their one kernel)."""
    out = {}
    for op, impls in REGISTRY.implemented("c").items():
        for i in impls:
            k = i.meta["kernel"]
            if k.isa == "portable" and k.layout == "nchw" and (k.weight_bits is None
                                                               or k.weight_bits[0] <= bits <= k.weight_bits[1]):
                out.setdefault(op, k.function)
    return out
