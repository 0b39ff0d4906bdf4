"""lower_node(node, graph, cpu) -> Kernel: one ai.edgeq node as a TVM-generated kernel.

Each op module under edgeq.lower_tvm.ops gives a `Lowering`: the kernel's cache key (the
op's parameters), its TE definition, its schedule and the constant arrays it needs.
This module turns that into a `Kernel`, compiling the object only when the cache does
not hold it yet. The ops with a TVM kernel are the op registry's "tvm" stage (registered
below with `@implements("tvm", op)`); the others stay with edgeq's C kernels (see
docs/arm64.md for why).
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from edgeq.ir import Graph, Node
from edgeq.ops import implementations, implements, lookup
from edgeq.lower_tvm import objects
from edgeq.lower_tvm.cpus import Cpu
from edgeq.lower_tvm.kernel import Arg, Kernel
from edgeq.lower_tvm.ops import conv, depthwise, eltwise, pool


class Lowering(Protocol):
    op: str

    def key(self) -> dict: ...                       # what determines the object
    def te_args(self) -> list: ...                   # TE tensors in kernel order
    def schedule(self, func): ...                    # PrimFunc -> scheduled PrimFunc
    def consts(self) -> dict[str, np.ndarray]: ...   # arrays for the "const" args
    def io(self) -> dict[str, str]: ...              # TE name -> graph tensor (inputs, output)
    # optional `init`: {reduction block: TVMScript start value} (see objects.prim_func)


def make_kernel(lowering: Lowering, cpu: Cpu) -> Kernel:
    # the lowering's own "inner" (what its schedule used) wins over the CPU's best
    key = {"cpu": cpu.name, "inner": cpu.inner_product, **lowering.key()}
    symbol = f"eqtvm_{lowering.op.lower()}_{objects.kernel_hash(key)}"
    tensors = lowering.te_args()
    consts, io = lowering.consts(), lowering.io()
    args = []
    outputs = {tensors[-1].op.name}
    for t in tensors:
        name, shape, dtype = t.op.name, tuple(int(d) for d in t.shape), str(t.dtype)
        if name in consts:
            data = np.ascontiguousarray(consts[name], dtype=dtype).reshape(shape)
            args.append(Arg(name, "const", dtype, shape, data=data))
        elif name in outputs:
            args.append(Arg(name, "output", dtype, shape, tensor=io.get(name)))
        elif name in io:
            args.append(Arg(name, "input", dtype, shape, tensor=io[name]))
        else:
            args.append(Arg(name, "scratch", dtype, shape))
    obj = objects.cached_object(symbol)
    if not obj.exists():
        func = lowering.schedule(objects.prim_func(tensors, init=getattr(lowering, "init", None)))
        objects.build_object(func, symbol, cpu.target(), obj)
    return Kernel(symbol, obj, args, lowering.op, notes=key)


@implements("tvm", "QConv")
def _conv(node: Node, graph: Graph, cpu: Cpu):
    if depthwise.is_depthwise(node, graph):
        return depthwise.DepthwiseLowering(node, graph, cpu)
    return conv.ConvLowering(node, graph, cpu)


@implements("tvm", "QGemm")
def _gemm(node: Node, graph: Graph, cpu: Cpu, k_order=None):
    return conv.ConvLowering(node, graph, cpu, gemm=True, k_order=k_order)


@implements("tvm", "QAdd")
def _add(node: Node, graph: Graph, cpu: Cpu, perm=(0, 2, 3, 1)):
    return eltwise.AddLowering(node, graph, cpu, perm)


@implements("tvm", "QMaxPool", "QAvgPool")
def _pool(node: Node, graph: Graph, cpu: Cpu):
    return pool.PoolLowering(node, graph, cpu)


def has_kernel(op: str) -> bool:
    """Whether `op` has a TVM kernel (the others run edgeq's C kernels)."""
    return bool(implementations("tvm", op))


def lower_node(node: Node, graph: Graph, cpu: Cpu, **options) -> Kernel:
    """The kernel for `node`; its activations are NHWC (QAdd: `perm=None` keeps the
    graph's own axis order, for operands that are not images). EdgeqError naming the op
    and the node when it has no TVM kernel."""
    lowering: Callable[..., Lowering] = lookup("tvm", node.op, node.name).fn
    return make_kernel(lowering(node, graph, cpu, **options), cpu)
