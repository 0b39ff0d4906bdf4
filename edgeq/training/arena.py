"""The memory plan of a training build: one arena for the forward, the tensors the backward
keeps and the gradients (the planner of edgeq.memory_plan, with the lifetimes below).

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
  gradient is the output's buffer and exponent.
- A tensor read by two nodes would need its two gradients summed: the C step does not do
  that yet, so such a model is refused here, naming the tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.memory_plan import Buffer, MemoryPlan
from edgeq.training.plan import TrainPlan

PASS_ON = ("QReshape", "QRequant")  # the input gradient is the output gradient (same bytes)


@dataclass
class TrainArena:
    memory: MemoryPlan
    grad: dict[str, str]     # tensor -> its gradient buffer's key
    slot: dict[str, int]     # gradient buffer key -> index of its exponent (one int32 each)
    loss_step: int

    def grad_offset(self, tensor: str) -> int:
        return self.memory.extra[self.grad[tensor]][0]

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

    def new(tensor: str, first: int) -> None:
        key = f"grad:{tensor}"
        consumer = reader_of.get(tensor)
        last = at[consumer.name] if consumer is not None else first
        bufs[key] = Buffer(key, 4 * _elems(plan, tensor), first, last, order=10**6 + len(bufs))
        grad[tensor] = key

    new(plan.logits, loss)
    for node in plan.backward:
        for i, wanted in enumerate(plan.wants[node.name]):
            if not wanted:
                continue
            t = node.inputs[i]
            if t in grad:
                raise EdgeqError(f"tensor {t!r} is read by two layers on the training path; the C training step "
                                 "does not sum two gradients yet", "train only layers after it (a smaller last:N)")
            if node.op in PASS_ON:
                key = grad[t] = grad[node.outputs[0]]
                consumer = reader_of.get(t)
                if consumer is not None:
                    bufs[key].last = max(bufs[key].last, at[consumer.name])
            else:
                new(t, at[node.name])
    memory = plan_memory(g, keep_until=keep_until, extra=list(bufs.values()), **options)
    return TrainArena(memory, grad, {k: i for i, k in enumerate(bufs)}, loss)
