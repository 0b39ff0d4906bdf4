"""The memory plan's defining properties, on random graphs.

1. Safety, checked by simulation: walk the nodes in order over a byte-tagged arena; every
   input a node reads must still hold its own tag, scratch must not overlap the node's
   operands, then the node's outputs stamp their tags (in place over a dying input only
   for the element-wise ops the planner allows).
2. No two simultaneously live buffers overlap.
3. arena_bytes >= the most bytes live at any step (the lower bound any plan must meet).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.ir import Graph, Node, Tensor, QDOMAIN
from edgeq.codegen import plan_memory
from edgeq.planning.memory_plan import ALIGN, INPLACE_INPUTS


def random_graph(seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(f"rand{seed}")
    live = []

    def tensor(size):
        name = f"t{len(g.tensors)}"
        g.add_tensor(Tensor(name, (1, int(size)), "int8"))
        live.append(name)
        return name

    for _ in range(rng.integers(1, 3)):
        g.inputs.append(tensor(rng.integers(1, 300)))
    for i in range(rng.integers(1, 25)):
        a = live[rng.integers(len(live))]
        size = g.tensors[a].shape[1]
        kind = rng.choice(["QLut", "QAdd", "QGemm", "QReshape", "QConcat", "QRequant"])
        same = [t for t in live if g.tensors[t].shape == g.tensors[a].shape]
        if kind == "QAdd":
            ins, out_size = [a, same[rng.integers(len(same))]], size
        elif kind == "QConcat":
            b = live[rng.integers(len(live))]
            ins, out_size = [a, b], size + g.tensors[b].shape[1]
        elif kind == "QGemm":
            ins, out_size = [a], rng.integers(1, 300)
        else:
            ins, out_size = [a], size
        y = tensor(out_size)
        g.nodes.append(Node(str(kind), f"n{i}", ins, [y], {}, QDOMAIN))
    g.outputs = sorted({live[-1], *rng.choice(live, size=rng.integers(0, 3))})
    return g


def scratch_stub(node, graph) -> int:
    return (sum(map(ord, node.name)) * 7) % 50 if node.op == "QGemm" else 0


def simulate(g: Graph, plan) -> None:
    arena = np.full(plan.arena_bytes, -1, dtype=np.int64)
    ident = {t: k for k, t in enumerate(plan.offsets)}

    def region(t):
        return slice(plan.offsets[t], plan.offsets[t] + plan.sizes[t])

    for t in g.inputs:
        arena[region(t)] = ident[t]
    for step, node in enumerate(g.nodes):
        node = Node(node.op, node.name, [t for t in node.inputs if t in plan.offsets], node.outputs)  # no consts
        for t in node.inputs:
            assert (arena[region(t)] == ident[t]).all(), f"{node.name} reads a clobbered {t}"
        if node.name in plan.scratch:
            off, size = plan.scratch[node.name]
            used = set(range(off, off + size))
            for t in node.inputs + node.outputs:
                r = region(t)
                assert not used & set(range(r.start, r.stop)), "scratch overlaps an operand"
        for y in node.outputs:
            if node.op == "QReshape":
                assert plan.offsets[y] == plan.offsets[node.inputs[0]]
                ident[y] = ident[node.inputs[0]]  # the same bytes under another name
                continue
            clobbered = [t for t in node.inputs if region(t).start < region(y).stop and region(y).start < region(t).stop]
            for t in clobbered:  # only a dying input of an element-wise op may be overwritten
                same = [s for s in node.inputs if region(s) == region(t)]  # t or its alias
                assert node.op in INPLACE_INPUTS and any((node.name, s) in plan.inplace for s in same)
                assert region(t) == region(y) and plan.lifetimes[t][1] == step
            arena[region(y)] = ident[y]
    for t in g.outputs:
        assert (arena[region(t)] == ident[t]).all(), f"output {t} clobbered"


@pytest.mark.parametrize("seed", range(60))
def test_random_graphs(seed):
    g = random_graph(seed)
    plan = plan_memory(g, scratch_size=scratch_stub)
    simulate(g, plan)
    assert plan.arena_bytes >= plan.peak_live_bytes
    assert plan.arena_bytes % ALIGN == 0
    assert all(b.offset % ALIGN == 0 for b in plan.buffers)
    bufs = plan.buffers
    for i, a in enumerate(bufs):
        assert a.offset + a.size <= plan.arena_bytes
        for b in bufs[i + 1:]:
            if a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


def test_chain_reuses_memory_and_runs_in_place():
    """x -> lut -> lut -> gemm: the LUTs run in place, the arena holds two buffers."""
    g = Graph("chain")
    for name, n in (("x", 100), ("a", 100), ("b", 100), ("y", 10)):
        g.add_tensor(Tensor(name, (1, n), "int8"))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("QLut", "l1", ["x"], ["a"], {}, QDOMAIN), Node("QLut", "l2", ["a"], ["b"], {}, QDOMAIN),
               Node("QGemm", "fc", ["b"], ["y"], {}, QDOMAIN)]
    plan = plan_memory(g, scratch_size=lambda n, g: 0)
    assert plan.inplace == [("l1", "x"), ("l2", "a")]
    assert plan.offsets["x"] == plan.offsets["a"] == plan.offsets["b"]
    assert plan.arena_bytes == 112 + 16
    assert plan.timeline == [100, 100, 110, 10]


def test_graph_output_never_overwritten_in_place():
    g = Graph("keep")
    for name in ("x", "a", "b"):
        g.add_tensor(Tensor(name, (1, 64), "int8"))
    g.inputs, g.outputs = ["x"], ["a", "b"]
    g.nodes = [Node("QLut", "l1", ["x"], ["a"], {}, QDOMAIN), Node("QLut", "l2", ["a"], ["b"], {}, QDOMAIN)]
    plan = plan_memory(g, scratch_size=lambda n, g: 0)
    assert ("l2", "a") not in plan.inplace and plan.offsets["a"] != plan.offsets["b"]


def test_default_scratch_from_runtime():
    """Without a callable the planner asks runtime_c's scratch_size mirror."""
    from tests.test_codegen_host import qgraph_ops
    g = qgraph_ops()
    plan = plan_memory(g)
    simulate(g, plan)
    assert plan.to_dict()["arena_bytes"] == plan.arena_bytes


@pytest.mark.parametrize("seed", range(60))
def test_scratch_never_raises_the_arena(seed):
    """scratch="fit": the arena is the activations' own; a node gets its scratch wherever it
    fits under it, else runs the direct loops (listed in plan.direct), never both."""
    g = random_graph(seed)
    fit = plan_memory(g, scratch_size=scratch_stub)
    alone = plan_memory(g, scratch_size=lambda n, g: 0)
    always = plan_memory(g, scratch_size=scratch_stub, scratch="always")
    simulate(g, fit)
    simulate(g, always)
    assert fit.arena_bytes == alone.arena_bytes <= always.arena_bytes
    wanting = {n.name for n in g.nodes if scratch_stub(n, g) > 0}
    assert set(fit.scratch) | set(fit.direct) == wanting and not set(fit.scratch) & set(fit.direct)
    assert set(always.scratch) == wanting and always.direct == []
    assert all(off + size <= fit.arena_bytes for off, size in fit.scratch.values())


def test_scratch_fits_in_a_gap_and_is_dropped_at_the_peak():
    """x(100) -> fc1 -> a(10) -> fc2 -> y(10): at fc1 the arena (x + a) is full, so fc1 runs
    without scratch; at fc2 x is dead and its bytes hold fc2's scratch."""
    g = Graph("gap")
    for name, n in (("x", 100), ("a", 10), ("y", 10)):
        g.add_tensor(Tensor(name, (1, n), "int8"))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("QGemm", "fc1", ["x"], ["a"], {}, QDOMAIN), Node("QGemm", "fc2", ["a"], ["y"], {}, QDOMAIN)]
    plan = plan_memory(g, scratch_size=lambda n, g: 40)
    assert plan.arena_bytes == 112 + 16
    assert plan.direct == ["fc1"] and plan.scratch["fc2"][1] == 40
    assert plan.to_dict()["direct"] == ["fc1"]
    assert plan_memory(g, scratch_size=lambda n, g: 40, scratch="always").arena_bytes > plan.arena_bytes
    with pytest.raises(ValueError, match="scratch="):
        plan_memory(g, scratch="never")
