"""Static memory plan: every activation tensor of a quantized graph gets an offset in one
arena, so generated C needs no malloc and its RAM use is known at compile time.

    plan = plan_memory(qgraph, scratch_size=fn)   # fn(node, graph): the kernels' scratch bytes
    plan.offsets["conv1_out"], plan.arena_bytes, plan.timeline

Rules
-----
- Steps are the node indices of `qgraph.nodes` (already topological). A tensor is live
  from the step that produces it to the last step that reads it, both included: a
  node's output never shares bytes with an input it is still reading, unless in place.
- Graph inputs live from step 0 (the run copies the caller's input into the arena before
  the first node: one buffer layout for every target, and an input may then be
  overwritten in place); graph outputs live to the end (the run copies them out).
- An op declared `alias` (QReshape) has its input's buffer as output (the runtime's
  reshape is a reinterpretation of the same contiguous bytes), so no kernel call and no copy.
- In place (output written over an input) only where the op's declaration lists that input
  in `inplace_inputs` (a contract every implementation keeps; eq_kernels.h documents it
  for the C kernels) and that input dies at this node:
  QLut, QRequant, QPrelu (same element count, element-wise) and QAdd over an input that is
  not broadcast (each output element is computed from the same-index inputs before it is
  stored). QMul has the same loop today but its header does not promise it, so it does
  not run in place. Conv, Gemm, pools, softmax, transpose, pad and concat read
  neighbouring elements after writing, so they never run in place.
- Each node's kernel scratch (`scratch_size(node, graph)`, given by the caller: the C
  targets pass the scratch of the kernels the code generator chose; without it no node
  gets scratch) is a buffer live at that step
  only. Every layer can run without it (the NCHW QConv/QGemm kernels take NULL and run
  their direct loops; the channels-last ones have scratch-free portable variants, which the
  C stage picks for such nodes: codegen.plan_build), bit-identical, just slower, so with
  scratch="fit" the planner first places the activations alone, then gives each node its
  scratch only where it fits under that arena: the arena is never raised by a scratch
  buffer. Nodes left without one are listed in `plan.direct` (speed traded for RAM at the
  peak layers). scratch="always" gives every node its scratch and grows the arena as
  needed. The C targets' default, `--scratch fast`, keeps the "fit" plan and runs its
  `direct` convs in ranges of output rows, each range's scratch in bytes dead at that
  moment (codegen.row_chunks: `plan.chunks`); "always" only if some layer cannot.
- Buffers are aligned to ALIGN bytes (16: the arena is `aligned(16)`, so every buffer
  start suits any SIMD load, and word loads in the kernels are aligned).
- Placement: buffers sorted by size (largest first, then earliest, then definition order;
  never by name, so a model's names cannot change its plan), each put at the
  lowest offset where it overlaps no already-placed buffer with an intersecting
  lifetime (greedy by size with gap fitting, TFLite Micro's strategy); then the same
  greedy in order of first use, and the smaller of the two arenas is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgeq.ir import Graph, Node
from edgeq.ops import INTEGER_OPS, holds

ALIGN = 16

# op -> indices of the inputs the output may overwrite (the declarations' inplace_inputs)
INPLACE_INPUTS = {op: d.inplace_inputs for op, d in INTEGER_OPS.items() if d.inplace_inputs}


@dataclass
class Buffer:
    """One arena region: the tensors sharing it (aliases, in-place chains) or a scratch."""
    key: str
    size: int
    first: int
    last: int
    tensors: list[str] = field(default_factory=list)
    offset: int = -1
    order: int = 0  # creation order: the last tie-break, so names never change the plan

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: dict[str, int]              # activation tensor -> byte offset in the arena
    sizes: dict[str, int]                # activation tensor -> bytes
    lifetimes: dict[str, tuple[int, int]]  # tensor -> (first step, last step)
    scratch: dict[str, tuple[int, int]]  # node name -> (offset, bytes), only bytes > 0
    timeline: list[int]                  # live bytes at each step (unaligned, for a plot)
    buffers: list[Buffer]
    inplace: list[tuple[str, str]]       # (node name, input tensor it overwrites)
    aliases: dict[str, str]              # an alias op's output (QReshape) -> input tensor
    direct: list[str] = field(default_factory=list)  # nodes whose scratch did not fit (NULL)
    extra: dict[str, tuple[int, int]] = field(default_factory=dict)  # caller's buffer key -> (offset, bytes)
    # node -> [(first output row, end row, scratch offset)]: a node the C stage runs in row
    # ranges, each with its scratch in bytes dead while it runs (codegen.row_chunks)
    chunks: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)

    @property
    def peak_live_bytes(self) -> int:
        """The lower bound any plan must meet: the most bytes live at one step."""
        return max(self.timeline, default=0)

    def to_dict(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "peak_live_bytes": self.peak_live_bytes,
                "timeline": self.timeline, "inplace": [list(p) for p in self.inplace],
                "aliases": dict(self.aliases), "direct": list(self.direct),
                "chunks": {n: [list(c) for c in cs] for n, cs in self.chunks.items()},
                "tensors": {n: {"offset": self.offsets[n], "bytes": self.sizes[n],
                                "live": list(self.lifetimes[n])} for n in self.offsets}}


def no_scratch(node: Node, graph: Graph) -> int:
    return 0


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def activations(qgraph: Graph) -> list[str]:
    """Non-constant tensors in first-definition order (graph inputs, then node outputs)."""
    names = list(qgraph.inputs)
    for n in qgraph.nodes:
        names += [o for o in n.outputs if o not in names]
    return [t for t in names if qgraph.const(t) is None]


def lifetimes(qgraph: Graph) -> dict[str, tuple[int, int]]:
    end = len(qgraph.nodes)  # graph outputs stay live after the last node (copy-out)
    life = {name: (0, 0) for name in qgraph.inputs}
    for i, n in enumerate(qgraph.nodes):
        for o in n.outputs:
            life[o] = (i, i)
        for t in n.inputs:
            if t in life:
                life[t] = (life[t][0], max(life[t][1], i))
    for o in qgraph.outputs:
        if o in life:
            life[o] = (life[o][0], end)
    return life


SCRATCH_POLICIES = ("fit", "always")


def plan_memory(qgraph: Graph, scratch_size: Callable[[Node, Graph], int] | None = None,
                scratch: str = "fit", keep_until: dict[str, int] | None = None,
                extra: list[Buffer] = ()) -> MemoryPlan:
    """`keep_until` (tensor -> step) keeps tensors alive past their last reader and `extra`
    adds the caller's own buffers (steps after the last node are the caller's): a training
    step keeps forward tensors for its backward and places its gradients in the same arena
    (edgeq.training.arena)."""
    if scratch not in SCRATCH_POLICIES:
        raise ValueError(f"scratch={scratch!r}: choose one of {SCRATCH_POLICIES}")
    scratch_size = scratch_size or no_scratch
    life = lifetimes(qgraph)
    for t, step in (keep_until or {}).items():
        life[t] = (life[t][0], max(life[t][1], step))
    sizes = {t: qgraph.tensors[t].nbytes for t in life}

    # Union tensors into buffers: aliases and in-place outputs join their input's buffer.
    group: dict[str, Buffer] = {t: Buffer(t, sizes[t], *life[t], [t], order=k) for k, t in enumerate(life)}
    aliases, inplace = {}, []

    def join(into: Buffer, t: str) -> None:
        into.size = max(into.size, sizes[t])
        into.first, into.last = min(into.first, life[t][0]), max(into.last, life[t][1])
        into.tensors.append(t)
        group[t] = into

    for i, n in enumerate(qgraph.nodes):
        out = n.outputs[0]
        if holds("alias", n) and n.inputs[0] in group:
            aliases[out] = n.inputs[0]
            join(group[n.inputs[0]], out)
            continue
        for k in INPLACE_INPUTS.get(n.op, ()):
            src = n.inputs[k] if k < len(n.inputs) else ""
            buf = group.get(src)
            if (buf is None or buf.last != i or sizes[src] != sizes[out]
                    or qgraph.tensors[src].shape != qgraph.tensors[out].shape):
                continue  # still read later, a graph output, broadcast, or a constant
            inplace.append((n.name, src))
            join(buf, out)
            break

    buffers = list({id(b): b for b in group.values()}.values()) + list(extra)
    scratches = [Buffer(f"scratch:{n.name}", s, i, i, order=len(life) + i) for i, n in enumerate(qgraph.nodes)
                 if (s := int(scratch_size(n, qgraph))) > 0]
    direct = []
    if scratch == "always":
        buffers += scratches
        arena = _place(buffers)
    else:
        arena = _place(buffers)
        for b in sorted(scratches, key=_placement_order):
            b.offset = _lowest_offset(b, buffers)
            if b.offset + b.size <= arena:
                buffers.append(b)
            else:
                direct.append(b.key.split(":", 1)[1])
        direct.sort(key=[n.name for n in qgraph.nodes].index)

    steps = max([len(qgraph.nodes) + 1] + [b.last + 1 for b in extra])
    timeline = [sum(b.size for b in buffers if b.first <= i <= b.last) for i in range(steps)]
    offsets = {t: group[t].offset for t in life}
    scratch_at = {b.key.split(":", 1)[1]: (b.offset, b.size) for b in buffers
                  if not b.tensors and b.key.startswith("scratch:")}
    return MemoryPlan(arena, offsets, sizes, life, scratch_at, timeline, buffers, inplace, aliases, direct,
                      {b.key: (b.offset, b.size) for b in extra})


def _placement_order(b: Buffer):
    return (-b.size, b.first, b.order)


def _lowest_offset(b: Buffer, placed: list[Buffer]) -> int:
    """The lowest offset where b overlaps no placed buffer with an intersecting lifetime."""
    busy = sorted((p.offset, p.offset + _align(p.size)) for p in placed if p.overlaps_in_time(b))
    offset = 0
    for start, stop in busy:
        if offset + b.size <= start:
            break  # fits in the gap before this busy range
        offset = max(offset, stop)
    return offset


# Placement orders tried in turn (never by name): largest first (TFLite Micro's), then
# earliest first, which packs a chain whose big buffers overlap in time (an aliased input
# living into the second layer) where the first leaves a gap. The smallest arena wins,
# the earlier order on a tie.
PLACEMENT_ORDERS = (_placement_order, lambda b: (b.first, -b.size, b.order))


def _place(buffers: list[Buffer]) -> int:
    """Greedy with gap fitting in each placement order; keeps the smallest arena's offsets
    and returns its size (aligned)."""
    best = None
    for order in PLACEMENT_ORDERS:
        placed: list[Buffer] = []
        for b in sorted(buffers, key=order):
            b.offset = _lowest_offset(b, placed)
            placed.append(b)
        arena = _align(max((b.offset + b.size for b in buffers), default=0))
        if best is None or arena < best[0]:
            best = (arena, [b.offset for b in buffers])
    for b, offset in zip(buffers, best[1]):
        b.offset = offset
    return best[0]


def plot_timeline(plan: MemoryPlan, layer_names: list[str], path, budget_bytes: int | None = None,
                  later: list[str] = ()) -> None:
    """A PNG of the live activation bytes at each step (the plan's timeline) under the
    arena size; the part's RAM budget, when given, is in the title. matplotlib's object
    API, no pyplot (no global state, no display). `later`: names of the steps after the
    outputs' copy-out (a training step's loss and backward blocks)."""
    from matplotlib.figure import Figure
    steps = list(range(len(plan.timeline)))
    unit, div = ("KiB", 1024) if plan.arena_bytes >= 4096 else ("bytes", 1)
    fig = Figure(figsize=(max(6.0, 0.25 * len(steps)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(steps, [b / div for b in plan.timeline], width=0.8, color="#4c72b0",
           label="live bytes (activations + scratch)")
    ax.axhline(plan.arena_bytes / div, color="#c44e52", label=f"arena {plan.arena_bytes:,} B")
    # layer names come from the model file: drawn as plain text (a `$` would start mathtext)
    labels = ["outputs" if n is None else f"{i} {''.join(c if c.isprintable() else '?' for c in n[:18])}"
              for i, n in enumerate(list(layer_names) + [None] + list(later))]
    ax.set_xticks(steps, labels[:len(steps)], rotation=90, fontsize=6, parse_math=False)
    ax.set_ylabel(unit)
    title = "memory timeline (one step per layer)"
    if budget_bytes:
        title += f": arena {plan.arena_bytes:,} B of the part's {budget_bytes:,} B RAM"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=110)
