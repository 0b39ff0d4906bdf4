"""Row chunks: a channels-last conv whose scratch would raise the arena runs its fast kernel
anyway, in two ranges of output rows, each given its scratch in arena bytes that are dead
while it runs (the default `--scratch fast` plan: the smallest arena at the fast kernels'
speed).

A conv's NHWC input and output are contiguous rows, and a range of output rows is the
same kernel called with fewer rows (ops_nhwc.row_range_fields: the input rows it reads, the pads
that range still has). At the layer of the arena's peak there is no free gap, but:

- while the first range [0, r) runs, the output rows [r, out_h) are not written yet:
  their bytes are the first range's scratch;
- while the second range [r, out_h) runs, the input rows above the first one it reads are
  dead when this layer is the input's last reader: their bytes are its scratch.

`r` is the first row that leaves the second range enough dead input rows; the split
exists when the first range then still has enough output rows left over. Batch 1 and
2-D convs only (every MLPerf Tiny peak layer). A node with no such split stays in the
plan's `direct` list (the scratch-free variant).
"""
from __future__ import annotations

from dataclasses import replace

from edgeq.codegen.kernels import KernelChoice, kernel_of, scratch_size
from edgeq.codegen.ops_nhwc import conv_fields, row_range_fields
from edgeq.ir import Graph, Node
from edgeq.planning.memory_plan import MemoryPlan, _align


def _shape(graph: Graph, t: str) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.tensors[t].shape)


def _free(plan: MemoryPlan, step: int) -> list[tuple[int, int]]:
    """The arena's byte ranges no buffer uses at `step`."""
    busy = sorted((b.offset, b.offset + _align(b.size)) for b in plan.buffers if b.first <= step <= b.last)
    free, at = [], 0
    for start, stop in busy + [(plan.arena_bytes, plan.arena_bytes)]:
        if start > at:
            free.append((at, start))
        at = max(at, stop)
    return free


def _place(ranges: list[tuple[int, int]], need: int) -> int | None:
    """The start of the first `need` bytes inside the union of `ranges`, or None."""
    merged: list[list[int]] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return next((start for start, stop in merged if stop - start >= need), None)


def _chunks(f: dict, need: int, free: list, x_off: int, y_off: int, x_dead: bool):
    """Output-row ranges, as long as each can be, each with `need` dead bytes: the free
    ranges, the output rows after it, the input rows above it (x_dead: this is x's last
    reader). None when some row cannot get them."""
    if f["batch"] != 1:
        return None
    x_row, y_row, out_h = f["in_w"] * f["in_c"], f["out_w"] * f["out_c"], f["out_h"]
    chunks, a = [], 0
    while a < out_h:
        head = row_range_fields(f, a, out_h)[1] * x_row if x_dead else 0
        best = None
        for b in range(out_h, a, -1):
            at = _place(free + [(x_off, x_off + head), (y_off + b * y_row, y_off + out_h * y_row)], need)
            if at is not None:
                best = (a, b, at)
                break
        if best is None:
            return None
        chunks.append(best)
        a = best[1]
    return chunks if len(chunks) > 1 else None  # one range: the fit plan would have placed it


def _last_step(plan: MemoryPlan, tensor: str) -> int:
    """The last step the tensor's bytes are live (aliases and in-place outputs share them)."""
    return next(b.last for b in plan.buffers if tensor in b.tensors)


def plan_row_chunks(graph: Graph, plan: MemoryPlan, kernels: KernelChoice) -> MemoryPlan:
    """`plan` (a "fit" plan) with each `direct` node that can run in row chunks moved to
    `plan.chunks`: node -> [(first output row, end row, scratch offset)]. `kernels`: the
    build's choice before any node is made direct (the kernel whose scratch is placed)."""
    chunks, direct = {}, []
    for name in plan.direct:
        i, node = next((i, n) for i, n in enumerate(graph.nodes) if n.name == name)
        split = _chunkable(graph, plan, kernels, i, node)
        if split is None:
            direct.append(name)
        else:
            chunks[name] = split
    return replace(plan, direct=direct, chunks=chunks)


def _chunkable(graph: Graph, plan: MemoryPlan, kernels: KernelChoice, step: int, node: Node):
    if node.op != "QConv" or len(_shape(graph, node.inputs[0])) != 4:
        return None
    kernel = kernel_of(node, graph, kernels)
    need = int(scratch_size(node, graph, kernels))
    if kernel.layout != "nhwc" or need <= 0:
        return None
    f = conv_fields(node, graph)
    x, y = node.inputs[0], node.outputs[0]
    return _chunks(f, need, _free(plan, step), plan.offsets[x], plan.offsets[y], _last_step(plan, x) == step)
