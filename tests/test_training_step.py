"""The whole training step on a small compiled network (conv, depthwise, pointwise, a
residual QAdd, average pooling, flatten, QGemm): it learns, it prunes, it is
deterministic, and its overflow limits hold."""
from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.ir import QDOMAIN, Node, Tensor
from edgeq.training import LayerUpdate, TrainOptions, TrainState, build_plan, train_step
from edgeq.training import step as step_module
from edgeq.training.memory import step_memory

from tests._train_graphs import small_net


@pytest.fixture(scope="module")
def net():
    return small_net()


def mean_loss(plan, state, x, labels) -> float:
    """Host-side cross-entropy of the int8 logits (float64, for the test only)."""
    q = plan.graph.tensors[plan.logits].q
    total = 0.0
    for i in range(len(x)):
        env = step_module.forward(plan, state, x[i:i + 1])
        z = q.dequantize(env[plan.logits]).astype(np.float64).ravel()
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[labels[i]]
    return total / len(x)


def layer_names(qgraph):
    return [n.name for n in qgraph.nodes if n.op in ("QConv", "QGemm")]


@pytest.mark.parametrize("spec,options", [
    ("last:2", TrainOptions(lr=0.05)),
    ("bias", TrainOptions(lr=0.05)),
    ("last:4", TrainOptions(lr=0.02, weight_update="stochastic", grad_bits=8, rounding="stochastic")),
    ("last:1", TrainOptions(lr=0.05, momentum=0.5)),
])
def test_training_steps_reduce_the_loss_on_a_fixed_batch(net, spec, options):
    qgraph, x, labels = net
    plan = build_plan(qgraph, spec, options)
    state = TrainState(plan)
    before = mean_loss(plan, state, x, labels)
    for _ in range(4):
        for i in range(len(x)):
            train_step(plan, state, x[i:i + 1], labels[i])
    after = mean_loss(plan, state, x, labels)
    assert after < before - 0.1, (before, after)


def test_backward_stops_at_the_earliest_updated_layer(net, monkeypatch):
    qgraph, x, labels = net
    names = layer_names(qgraph)
    plan = build_plan(qgraph, "last:2", TrainOptions())
    earliest = qgraph.node_by_name(names[-2])
    ran = []
    found = step_module.rule

    def spying(node):
        r = found(node)

        def spy(ctx, node, g):
            out = r.backward(ctx, node, g)
            ran.append((node.name, sorted(out)))
            return out
        return type(r)(r.prepare, spy)
    monkeypatch.setattr(step_module, "rule", spying)
    train_step(plan, TrainState(plan), x[:1], labels[0])
    assert [n for n, _ in ran] == [n.name for n in plan.backward]
    assert ran[-1] == (earliest.name, [])  # no input gradient below the earliest update
    before = {n.name for n in qgraph.nodes[:qgraph.nodes.index(earliest)]}
    assert not before & {n for n, _ in ran}


def test_gradients_of_a_tensor_read_twice_are_summed(net):
    """ConvBnNet's first activation feeds the depthwise conv and the residual QAdd."""
    qgraph, x, labels = net
    plan = build_plan(qgraph, "bias", TrainOptions())
    add = next(n for n in qgraph.nodes if n.op == "QAdd")
    assert all(plan.wants[add.name])
    state = TrainState(plan)
    train_step(plan, state, x[:1], labels[0])
    first = layer_names(qgraph)[0]
    assert not np.array_equal(state.biases[first], qgraph.const(qgraph.node_by_name(first).inputs[2]))


def test_the_frozen_prefix_cache_gives_the_same_bytes(net):
    qgraph, x, labels = net
    plan = build_plan(qgraph, "last:2", TrainOptions(weight_update="stochastic"))
    a, b = TrainState(plan), TrainState(plan)
    cut = plan.frozen_inputs()
    cache = step_module.frozen_forward(plan, x[:3])
    assert set(cache) == set(cut) and cut != [qgraph.inputs[0]]
    for i in range(3):
        train_step(plan, a, x[i:i + 1], labels[i])
        train_step(plan, b, x[i:i + 1], labels[i], frozen={k: v[i:i + 1] for k, v in cache.items()})
    for k in a.weights:
        assert np.array_equal(a.weights[k], b.weights[k]) and np.array_equal(a.biases[k], b.biases[k])
    assert a.draws.counter == b.draws.counter > 0


def test_same_seed_same_bytes_other_seed_other_bytes(net):
    qgraph, x, labels = net

    def run(seed):
        plan = build_plan(qgraph, "last:2", TrainOptions(weight_update="stochastic", rounding="stochastic", seed=seed))
        s = TrainState(plan)
        for i in range(3):
            train_step(plan, s, x[i:i + 1], labels[i])
        return s.to_graph()

    g1, g2, g3 = run(1), run(1), run(2)
    w = [n.inputs[1] for n in g1.nodes if n.op == "QGemm"][0]
    assert np.array_equal(g1.const(w), g2.const(w)) and not np.array_equal(g1.const(w), g3.const(w))


def test_master_residual_keeps_steps_smaller_than_one_unit(net):
    qgraph, x, labels = net
    weights = {}
    for mode in ("nearest", "master", "stochastic"):
        plan = build_plan(qgraph, "last:1", TrainOptions(lr=2e-5, weight_update=mode))
        s = TrainState(plan)
        for i in range(6):
            train_step(plan, s, x[i:i + 1], labels[i])
        name = layer_names(qgraph)[-1]
        weights[mode] = (s.weights[name], s.residuals.get(name))
    w0 = qgraph.const(qgraph.node_by_name(layer_names(qgraph)[-1]).inputs[1])
    assert np.array_equal(weights["nearest"][0], w0)           # every step rounded away
    assert np.count_nonzero(weights["master"][1]) > w0.size // 4  # kept in the residual
    assert not np.array_equal(weights["stochastic"][0], w0)      # moved, unbiased


def test_bias_never_leaves_the_forward_overflow_proof(net):
    qgraph, x, labels = net
    plan = build_plan(qgraph, "bias", TrainOptions(lr=5.0))
    state = TrainState(plan)
    for name, b in state.biases.items():
        state.biases[name] = np.full_like(b, plan.consts[name]["blimit"] - 1) * np.sign(b + 0.5).astype(np.int32)
    for i in range(4):
        train_step(plan, state, x[i:i + 1], labels[i])  # the forward's int32 checks would raise
    for name, b in state.biases.items():
        assert np.abs(b.astype(np.int64)).max() <= plan.consts[name]["blimit"]


def test_a_final_softmax_is_left_out_of_the_step(net):
    qgraph, x, labels = net
    g = qgraph.copy()
    out = g.outputs[0]
    g.add_tensor(Tensor("probs", g.tensors[out].shape, "int8", None, g.tensors[out].q))
    g.nodes.append(Node("QSoftmax", "sm", [out], ["probs"], {"input_mult": 1 << 30, "input_left_shift": 20,
                                                             "diff_min": -100}, QDOMAIN))
    g.outputs = ["probs"]
    plan = build_plan(g, "last:1", TrainOptions())
    assert plan.logits == out and all(n.op != "QSoftmax" for n in plan.forward)


@pytest.mark.parametrize("spec,cause", [("everything", "unknown training spec"), ("last:0", "unknown training spec"),
                                        ("last:99", "asks for 99 layers"), ("auto", "needs a memory budget")])
def test_bad_specs_fail_with_a_cause_and_a_fix(net, spec, cause):
    with pytest.raises(EdgeqError, match=cause) as err:
        build_plan(net[0], spec)
    assert err.value.fix


def test_channel_selection_moves_only_the_selected_inputs(net):
    qgraph, x, labels = net
    fc = layer_names(qgraph)[-1]
    plan = build_plan(qgraph, [LayerUpdate(fc, bias=False, weights=True, channels=(3, 5, 70))], TrainOptions(lr=0.1))
    s = TrainState(plan)
    for i in range(4):
        train_step(plan, s, x[i:i + 1], labels[i])
    w0 = qgraph.const(qgraph.node_by_name(fc).inputs[1])
    moved = np.any(s.weights[fc] != w0, axis=0) | np.any(s.residuals[fc] != 0, axis=0)
    assert set(np.flatnonzero(moved)) <= {3, 5, 70} and moved.any()
    mem = step_memory(plan)
    assert mem["residuals"] == 3 * w0.shape[0] and mem["biases"] == 0
