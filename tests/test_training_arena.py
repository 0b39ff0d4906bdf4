"""The training memory plan (edgeq/training/arena.py): forward tensors kept only until the
backward node that reads them, each gradient alive from the rule that writes it to the rule
that reads it, a residual's two gradients summed, and no two live buffers sharing bytes."""
from __future__ import annotations

import pytest

from edgeq.codegen import plan_memory
from edgeq.training import TrainOptions, build_plan
from edgeq.training.arena import plan_train_memory, step_of
from edgeq.planning.memory_plan import ALIGN
from tests._train_graphs import small_net


@pytest.fixture(scope="module")
def net():
    return small_net()


@pytest.mark.parametrize("spec", ["last:1", "last:2", "bias"])
def test_lifetimes_follow_the_backward(net, spec):
    qgraph = net[0]
    plan = build_plan(qgraph, spec, TrainOptions())
    arena = plan_train_memory(plan, plan_memory)
    mem, at = arena.memory, step_of(plan)
    loss = len(qgraph.nodes) + 1
    assert mem.lifetimes[plan.logits][1] >= loss
    readers = {}
    for node in plan.backward:
        for t in plan.consts[node.name].get("keep", ()):
            readers[t] = max(readers.get(t, 0), at[node.name])
    for t, step in readers.items():
        assert mem.lifetimes[t][1] == max(step, mem.lifetimes[t][1]) >= step
    bufs = {b.key: b for b in mem.buffers}
    consumer = {n.outputs[0]: at[n.name] for n in plan.backward}
    for (node, i), key in arena.writes.items():
        assert bufs[key].first <= at[node]
    for key in set(arena.grad.values()):  # freed right after the last rule reading it (a reshape passes it on)
        assert bufs[key].last == max(consumer[t] for t, k in arena.grad.items() if k == key), key
    # a forward tensor nobody reads backward dies as in inference
    inference = plan_memory(qgraph)
    for t, life in inference.lifetimes.items():
        if t not in readers and t != plan.logits:
            assert mem.lifetimes[t] == life, t
    # no two buffers alive at one step share a byte
    live = [b for b in mem.buffers if b.size]
    for a in live:
        for b in live:
            if a is not b and a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a.key, b.key)
    assert all(b.offset % ALIGN == 0 for b in live)


def test_a_residual_keeps_its_first_gradient_until_the_second(net):
    qgraph = net[0]
    plan = build_plan(qgraph, "bias", TrainOptions())
    arena = plan_train_memory(plan, plan_memory)
    assert arena.sums, "the test net has a residual add"
    at = step_of(plan)
    bufs = {b.key: b for b in arena.memory.buffers}
    for node, pairs in arena.sums.items():
        for tensor, first, key in pairs:
            assert key == arena.grad[tensor]  # two readers: the second writes the tensor's gradient
            assert bufs[first].last == at[node] and bufs[key].first == at[node]
