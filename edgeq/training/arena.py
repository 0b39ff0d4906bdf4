"""The memory plan of a training build: one arena for the forward, the tensors the backward
keeps and the gradients (the planner of edgeq.planning.memory_plan, with the lifetimes below).

Steps: the graph's nodes 0..N-1 (the forward is inference itself, the whole graph), N (the
outputs' copy-out), then the loss gradient at N + 1 and backward node k (plan.backward) at
N + 2 + k.
- A forward tensor the backward reads (plan.keep) lives until the last backward node that
  reads it; the logits until the loss. Everything else dies after its last forward reader,
  as in inference.
- A gradient is one buffer of 4 bytes an element: the int32 accumulator its rule fills,
  normalized in place into the int16 mantissas (eq_train_normalize may alias them). It lives
  from the step that writes it to the backward step of the node that reads it (the node
  that produced the tensor in the forward), and is dead after it: each gradient is freed
  right after its node's update. QReshape and QRequant pass their gradient on: the input's
  gradient is the output's buffer and exponent (unless their input has other readers too:
  then they copy it into a buffer of its own, which the sum below needs).
- A tensor read by k nodes (a residual: two) gets k gradients, written in backward order:
  each but the last lives in its own buffer until the next one is written, which adds it
  into its own buffer (eq_train_grad_sum, the reference's gradient.add) and normalizes
  there, so the running sum moves along and at most two of the k buffers are alive at once.
  A node reading the tensor on two inputs (x + x, concat(x, x)) is two readers at the same
  step: input 0's gradient first, as the reference adds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeq.planning.memory_plan import Buffer, MemoryPlan
from edgeq.training.plan import TrainPlan

PASS_ON = ("QReshape", "QRequant")  # the input gradient is the output gradient (same bytes)


@dataclass
class TrainArena:
    memory: MemoryPlan
    grad: dict[str, str]     # tensor -> the buffer key of its (final) gradient
    slot: dict[str, int]     # gradient buffer key -> index of its exponent (one int32 each)
    loss_step: int
    writes: dict[tuple[str, int], str] = field(default_factory=dict)  # (node, input) -> key it writes
    # node -> (tensor, key of the sum so far, key it wrote): added into the latter after its rule
    sums: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    copies: set[str] = field(default_factory=set)  # pass-on nodes that copy (their input has other readers)

    def offset(self, key: str) -> int:
        return self.memory.extra[key][0]

    def gradient_bytes(self) -> int:
        """The most gradient bytes alive at one step."""
        bufs = [b for b in self.memory.buffers if b.key in self.memory.extra]
        steps = range(self.loss_step, max((b.last for b in bufs), default=self.loss_step) + 1)
        return max((sum(b.size for b in bufs if b.first <= s <= b.last) for s in steps), default=0)


def step_of(plan: TrainPlan) -> dict[str, int]:
    """Backward node name -> its step."""
    base = len(plan.graph.nodes) + 2
    return {n.name: base + k for k, n in enumerate(plan.backward)}


def _elems(plan: TrainPlan, tensor: str) -> int:
    return int(np.prod(plan.graph.tensors[tensor].shape, dtype=np.int64))


def plan_train_memory(plan: TrainPlan, plan_memory, **options) -> TrainArena:
    """`plan_memory(qgraph, keep_until=, extra=, **options)`: the C build's planner."""
    g = plan.graph
    loss = len(g.nodes) + 1
    at = step_of(plan)
    reader_of = {n.outputs[0]: n for n in plan.backward}  # whose backward consumes a gradient
    keep_until = {plan.logits: loss}
    for node in plan.backward:
        for t in plan.consts[node.name].get("keep", ()):
            keep_until[t] = max(keep_until.get(t, 0), at[node.name])
    grad: dict[str, str] = {}
    bufs: dict[str, Buffer] = {}
    writes: dict[tuple[str, int], str] = {}
    sums: dict[str, list[tuple[str, str, str]]] = {}
    copies: set[str] = set()
    producers: dict[str, list[tuple[str, int]]] = {}  # tensor -> (backward node, input) writing its gradient
    for node in plan.backward:
        for i, wanted in enumerate(plan.wants[node.name]):
            if wanted:
                producers.setdefault(node.inputs[i], []).append((node.name, i))

    def new(key: str, tensor: str, first: int, last: int) -> str:
        bufs[key] = Buffer(key, 4 * _elems(plan, tensor), first, last, order=10**6 + len(bufs))
        return key

    def last_step(tensor: str) -> int:
        consumer = reader_of.get(tensor)
        return at[consumer.name] if consumer is not None else loss

    grad[plan.logits] = new(f"grad:{plan.logits}", plan.logits, loss, last_step(plan.logits))
    for node in plan.backward:
        for i, wanted in enumerate(plan.wants[node.name]):
            if not wanted:
                continue
            t = node.inputs[i]
            made = producers[t]
            if node.op in PASS_ON and len(made) == 1:
                key = grad[t] = writes[(node.name, i)] = grad[node.outputs[0]]
                bufs[key].last = max(bufs[key].last, last_step(t))
                continue
            if node.op in PASS_ON:  # its buffer cannot be passed on: the sum needs one of its own
                copies.add(node.name)
            j = made.index((node.name, i))
            if j == len(made) - 1:  # the last (or only) writer: the tensor's gradient
                grad[t] = writes[(node.name, i)] = new(f"grad:{t}", t, at[node.name], last_step(t))
            else:  # kept until the next writer adds it to its own
                writes[(node.name, i)] = new(f"grad:{t}#{j + 1}", t, at[node.name], at[made[j + 1][0]])
            if j > 0:
                sums.setdefault(node.name, []).append((t, f"grad:{t}#{j}", writes[(node.name, i)]))
    memory = plan_memory(g, keep_until=keep_until, extra=list(bufs.values()), **options)
    return TrainArena(memory, grad, {k: i for i, k in enumerate(bufs)}, loss, writes, sums, copies)
