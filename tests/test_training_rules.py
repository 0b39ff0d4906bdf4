"""Each integer backward rule against torch autograd on the dequantized values.

The integer result is compared with the float64 gradient of the same real function
(docs/training.md) within the rounding the rule's integer formula allows, computed per
element from the formula's own steps (never a fixed tolerance):
- normalize: half a unit of the result's last place, 2^(e_out - 1);
- a dyadic prescale (MBQM): one unit of each prescaled term, times the weight it meets;
- an exact integer sum: nothing.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeq.ir import QDOMAIN, Graph, Node
from edgeq.training.gradient import Grad, limit
from edgeq.training.loss import ce_gradient, loss_params
from edgeq.training.plan import TrainOptions
from edgeq.training.rules import load_rules
from edgeq.training.rules.clamp import inside, mask_bounds
from edgeq.training.spec import LayerUpdate
from edgeq.reference import run_node
from edgeq.reference.avgpool import avgpool_recips

from tests._train_graphs import act, context, conv_graph, rand_i8, real

RULES = load_rules()
L = limit(16)

CONV_CASES = {
    "conv3x3": dict(),
    "depthwise_s2": dict(ci=6, co=6, group=6, stride=(2, 2)),
    "depthwise_x2": dict(ci=4, co=8, group=4),
    "pointwise": dict(ci=8, co=5, k=(1, 1), pads=(0, 0, 0, 0)),
    "grouped_asym_dilated": dict(ci=4, co=6, group=2, pads=(0, 1, 2, 1), stride=(2, 1), dil=(1, 2)),
    "pointwise_40x40_fit": dict(ci=3, co=4, hw=(40, 40), k=(1, 1), pads=(0, 0, 0, 0)),
    "no_relu": dict(relu=False),
    "gemm": dict(gemm=True, ci=16, co=5),
}


def _torch_layer(g, node, X, W, B):
    if node.op == "QGemm":
        return F.linear(X, W, B)
    p = node.attrs["pads"]
    Xp = F.pad(X, (p[1], p[3], p[0], p[2]))
    return F.conv2d(Xp, W, B, stride=tuple(node.attrs["strides"]), dilation=tuple(node.attrs["dilations"]),
                    groups=node.attrs["group"])


def _transposed_abs(g, node, W_abs: torch.Tensor, ones: torch.Tensor, x_shape) -> np.ndarray:
    """Per input element, the sum of |w| over the terms that reach it (the prescale bound)."""
    X = torch.zeros(x_shape, dtype=torch.float64, requires_grad=True)
    Y = _torch_layer(g, node, X, W_abs, None)
    (Y * ones).sum().backward()
    return X.grad.numpy()


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_gemm_rule_matches_autograd(case):
    rng = np.random.default_rng(sorted(CONV_CASES).index(case))
    g, node, env = conv_graph(rng, **CONV_CASES[case])
    lr = 0.02
    ctx = context(g, node, env, (True, False, False, False, False),
                  LayerUpdate("layer", bias=True, weights=True), TrainOptions(lr=lr))
    c = ctx.consts(node)
    w_old, b_old = ctx.weight(node).copy(), ctx.state.biases["layer"].copy()
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    e = -16
    gx = RULES[node.op].backward(ctx, node, Grad(m, e))[0]

    s_x = float(g.tensors["x"].q.scale)
    s_w = np.asarray(g.tensors["w"].q.scale, np.float64)
    X, W = real(g, "x", env["x"]), real(g, "w", w_old)
    B = torch.tensor(b_old * s_x * s_w, dtype=torch.float64, requires_grad=True)
    mask = inside(env["y"], *mask_bounds(node))
    G = torch.tensor(np.where(mask, m, 0) * 2.0 ** e)
    (_torch_layer(g, node, X, W, B) * G).sum().backward()

    # input gradient: one unit (2^(e - j)) per prescaled term times |w|, plus half an ulp
    reach = _transposed_abs(g, node, torch.tensor(np.abs(w_old), dtype=torch.float64),
                            torch.ones(env["y"].shape, dtype=torch.float64), env["x"].shape)
    tol = reach * 2.0 ** (e - c["gexp"]) + 2.0 ** (gx.e - 1)
    err = np.abs(gx.real() - X.grad.numpy())
    assert np.all(err <= tol), f"max err {err.max()} vs tol {tol.min()}"
    assert np.abs(X.grad.numpy()).max() > 100 * tol.max()  # the check has teeth

    # bias: QAS step lr * G_B / (s_x s_w)^2 in real units = lr * G_B / (s_x s_w) integer units
    want_b = lr * B.grad.numpy() / (s_x * s_w)
    got_b = b_old.astype(np.int64) - ctx.state.biases["layer"]
    assert np.all(np.abs(got_b - want_b) <= 0.5 + 1e-6 * np.abs(want_b))
    assert np.abs(want_b).max() > 10

    # weights: the master moves by lr * G_W / s_w in units of 2^-8 (QAS), rounded once;
    # with a fit shift p the gradient's mantissas were rounded first (half a unit each)
    shape = (-1,) + (1,) * (w_old.ndim - 1)
    unit = 256 * lr / s_w.reshape(shape)
    want_w = W.grad.numpy() * unit  # lr * G_W / s_w * 256
    master = 256 * ctx.state.weights["layer"].astype(np.int64) + ctx.state.residuals["layer"]
    got_w = 256 * w_old.astype(np.int64) - master
    xs = np.abs(env["x"].astype(np.int64) - node.attrs["x_zp"]) * s_x
    p = c["wfit"]
    slack = 0.0
    if p:
        slack = unit * 2.0 ** (e + p - 1) * _transposed_abs_weight(g, node, xs, env["y"].shape, w_old.shape)
    clamped = (np.abs(master) >= 256 * 127)
    ok = np.abs(got_w - want_w) <= 0.5 + 1e-6 * np.abs(want_w) + slack
    assert np.all(ok | clamped)
    assert np.abs(want_w).max() > 10
    if case == "pointwise_40x40_fit":
        assert p > 0


def _transposed_abs_weight(g, node, xs_abs, y_shape, w_shape) -> np.ndarray:
    """Per weight, the sum over positions of |x - x_zp| s_x (the fit-rounding bound)."""
    W = torch.zeros(w_shape, dtype=torch.float64, requires_grad=True)
    Y = _torch_layer(g, node, torch.tensor(xs_abs), W, None)
    (Y * torch.ones(y_shape, dtype=torch.float64)).sum().backward()
    return W.grad.numpy()


def test_conv_without_updates_only_gives_the_input_gradient():
    g, node, env = conv_graph(np.random.default_rng(9))
    ctx = context(g, node, env, (True, False, False, False, False))
    out = RULES["QConv"].backward(ctx, node, Grad(np.ones(env["y"].shape, np.int64), -10))
    assert set(out) == {0} and not ctx.state.weights and not ctx.state.biases


def test_clamp_mask_bounds():
    n = lambda **a: Node("QConv", "n", [], [], a)  # noqa: E731
    assert mask_bounds(n(act_min=-128, act_max=127, y_zp=-128)) == (-128, None)  # ReLU at -128
    assert mask_bounds(n(act_min=-100, act_max=127, y_zp=-100)) == (-100, None)  # ReLU above -128
    assert mask_bounds(n(act_min=-128, act_max=127, y_zp=-6)) == (None, None)    # logits: format only
    assert mask_bounds(n(act_min=-128, act_max=90, y_zp=-128)) == (-128, 90)     # ReLU6
    y = np.array([-128, -127, 89, 90, 127])
    assert inside(y, -128, 90).tolist() == [False, True, True, False, False]


def test_clamp_mask_agrees_with_torch_relu_away_from_the_bound():
    """Where the float pre-activation is more than one output step from 0, the integer
    mask equals torch's ReLU gradient."""
    rng = np.random.default_rng(3)
    g, node, env = conv_graph(rng, relu=True)
    s_x = float(g.tensors["x"].q.scale)
    s_w = np.asarray(g.tensors["w"].q.scale)
    X, W = real(g, "x", env["x"]), real(g, "w", g.const("w"))
    B = torch.tensor(g.const("b") * s_x * s_w, dtype=torch.float64, requires_grad=True)
    pre = _torch_layer(g, node, X, W, B)
    Y = torch.relu(pre)
    Y.sum().backward()
    far = np.abs(pre.detach().numpy()) > float(g.tensors["y"].q.scale)
    mask = inside(env["y"], *mask_bounds(node))
    relu_grad = pre.detach().numpy() > 0
    assert far.sum() > 100 and np.array_equal(mask[far], relu_grad[far])


@pytest.mark.parametrize("classes,scale", [(2, 0.1), (10, 0.1077), (10, 0.02), (10, 0.5), (100, 0.05)])
def test_softmax_cross_entropy_gradient_matches_autograd(classes, scale):
    """Within one unit of 2^-14 (the fixed-point exp and reciprocal of QSoftmax are
    accurate to ~2^-20; the final rounding is half a unit)."""
    rng = np.random.default_rng(classes)
    params = loss_params(scale)
    for trial in range(40):
        spread = (10, 60, 255)[trial % 3]
        q = np.clip(rng.integers(-spread // 2, spread // 2 + 1, size=(1, classes)) + rng.integers(-60, 60), -128, 127)
        q = q.astype(np.int8)
        label = int(rng.integers(0, classes))
        m, e = ce_gradient(q, label, params)
        z = torch.tensor((q.astype(np.float64) - 3) * scale, requires_grad=True)
        F.cross_entropy(z, torch.tensor([label]), reduction="sum").backward()
        assert np.abs(m * 2.0 ** e - z.grad.numpy()).max() <= 2.0 ** -14
        assert m.sum() in range(-classes, classes + 1) and np.abs(m).max() <= L


def test_softmax_cross_entropy_example_from_the_docs():
    m, e = ce_gradient(np.array([[20, 0]], np.int8), 0, loss_params(0.1))
    assert m.tolist() == [[-1953, 1953]] and e == -14


def _pool_graph(rng, op, x_shape, kernel, strides, pads, include_pad=0):
    g = Graph("t")
    x = act(g, "x", x_shape, 0.03, -128)
    attrs = {"kernel": list(kernel), "strides": list(strides), "pads": list(pads), "dilations": [1, 1],
             "act_min": -128, "act_max": 127}
    if op == "QAvgPool":
        recip, rshift = avgpool_recips(*kernel)
        attrs.update(count_include_pad=include_pad, x_zp=-128, recip=recip, rshift=rshift)
    node = Node(op, "pool", [x], ["y"], attrs, QDOMAIN)
    xv = rand_i8(rng, x_shape)
    if op == "QMaxPool":  # distinct values: torch and edgeq then agree on every winner
        xv = (rng.permutation(256)[:int(np.prod(x_shape))] - 128).astype(np.int8).reshape(x_shape)
    yv = run_node(node, [xv])
    act(g, "y", yv.shape, 0.03, -128)
    g.nodes, g.inputs, g.outputs = [node], [x], ["y"]
    return g, node, {"x": xv, "y": yv}


@pytest.mark.parametrize("kernel,strides,pads,include_pad,hw", [
    ((7, 7), (1, 1), (0, 0, 0, 0), 0, (7, 7)),       # global
    ((3, 3), (2, 2), (1, 1, 1, 1), 0, (9, 8)),
    ((3, 3), (2, 2), (1, 1, 1, 1), 1, (9, 8)),
    ((2, 2), (1, 1), (0, 0, 0, 0), 0, (5, 5)),       # overlapping windows
])
def test_avgpool_rule_matches_autograd(kernel, strides, pads, include_pad, hw):
    rng = np.random.default_rng(sum(hw) + include_pad)
    g, node, env = _pool_graph(rng, "QAvgPool", (1, 3) + hw, kernel, strides, pads, include_pad)
    ctx = context(g, node, env, (True,))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    e = -17
    gx = RULES["QAvgPool"].backward(ctx, node, Grad(m, e))[0]
    X = real(g, "x", env["x"])
    Y = F.avg_pool2d(X, kernel, strides, (pads[0], pads[1]), count_include_pad=bool(include_pad))
    (Y * torch.tensor(m * 2.0 ** e)).sum().backward()
    Xc = torch.zeros(X.shape, dtype=torch.float64, requires_grad=True)
    F.conv2d(Xc, torch.ones(3, 1, *kernel, dtype=torch.float64), stride=strides,
             padding=(pads[0], pads[1]), groups=3).sum().backward()
    windows = Xc.grad.numpy()  # how many windows hold each input element
    tol = windows * 2.0 ** (e - ctx.consts(node)["pexp"]) + 2.0 ** (gx.e - 1)
    assert np.all(np.abs(gx.real() - X.grad.numpy()) <= tol)


def test_maxpool_rule_matches_autograd():
    rng = np.random.default_rng(5)
    g, node, env = _pool_graph(rng, "QMaxPool", (1, 2, 6, 7), (3, 3), (2, 2), (1, 1, 1, 1))
    ctx = context(g, node, env, (True,))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    gx = RULES["QMaxPool"].backward(ctx, node, Grad(m, -9))[0]
    X = real(g, "x", env["x"])
    (F.max_pool2d(X, 3, 2, 1) * torch.tensor(m * 2.0 ** -9)).sum().backward()
    assert np.abs(gx.real() - X.grad.numpy()).max() <= 2.0 ** (gx.e - 1)


def _add_graph(rng, b_shape, relu):
    g = Graph("t")
    a = act(g, "a", (1, 4, 5, 5), 0.02, -10)
    b = act(g, "b", b_shape, 0.05, 7)
    z = -128 if relu else 0
    node = Node("QAdd", "add", [a, b], ["y"], {
        "a_zp": -10, "b_zp": 7, "y_zp": z, "left_shift": 20, "a_mult": 1 << 30, "a_shift": -1,
        "b_mult": 1 << 30, "b_shift": 0, "y_mult": 1 << 30, "y_shift": -12, "act_min": -128, "act_max": 127}, QDOMAIN)
    env = {"a": rand_i8(rng, (1, 4, 5, 5)), "b": rand_i8(rng, b_shape)}
    env["y"] = run_node(node, [env["a"], env["b"]])
    act(g, "y", env["y"].shape, 0.1, z)
    g.nodes = [node]
    return g, node, env


@pytest.mark.parametrize("b_shape,relu", [((1, 4, 5, 5), True), ((1, 4, 1, 1), False), ((1, 1, 5, 1), True)])
def test_add_rule_matches_autograd(b_shape, relu):
    rng = np.random.default_rng(len(b_shape) + relu)
    g, node, env = _add_graph(rng, b_shape, relu)
    ctx = context(g, node, env, (True, True))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    out = RULES["QAdd"].backward(ctx, node, Grad(m, -20))
    A, B = real(g, "a", env["a"]), real(g, "b", env["b"])
    Y = A + B
    (Y * torch.tensor(np.where(inside(env["y"], *mask_bounds(node)), m, 0) * 2.0 ** -20)).sum().backward()
    for i, T in ((0, A), (1, B)):
        assert np.abs(out[i].real() - T.grad.numpy()).max() <= 2.0 ** (out[i].e - 1)
    if relu:
        assert (env["y"] == -128).any()  # the mask was exercised


def _shape_node(op, x_shape, **attrs):
    g = Graph("t")
    x = act(g, "x", x_shape, 0.1, 0)
    node = Node(op, op, [x], ["y"], attrs, QDOMAIN)
    xv = rand_i8(np.random.default_rng(0), x_shape)
    yv = run_node(node, [xv])
    act(g, "y", yv.shape, 0.1, 0)
    g.nodes = [node]
    return g, node, {"x": xv, "y": yv}


@pytest.mark.parametrize("op,attrs,fn", [
    ("QReshape", {"shape": [0, -1]}, lambda x: x.reshape(1, -1)),
    ("QTranspose", {"perm": [0, 2, 3, 1]}, lambda x: x.permute(0, 2, 3, 1)),
    ("QPad", {"pads": [0, 0, 1, 2, 0, 0, 3, 0]}, lambda x: F.pad(x, (2, 0, 1, 3))),
    ("QRequant", {"x_zp": 0, "y_zp": 0, "mult": 1 << 30, "shift": 1}, lambda x: x),
])
def test_data_movement_rules_are_exact(op, attrs, fn):
    g, node, env = _shape_node(op, (1, 3, 4, 5), **attrs)
    ctx = context(g, node, env, (True,))
    m = np.random.default_rng(1).integers(-L, L + 1, size=env["y"].shape)
    gx = RULES[op].backward(ctx, node, Grad(m, -12))[0]
    X = real(g, "x", env["x"])
    (fn(X) * torch.tensor(m * 2.0 ** -12)).sum().backward()
    assert gx.e == -12 and np.array_equal(gx.real(), X.grad.numpy())


@pytest.mark.parametrize("axis,shapes", [(1, [(1, 2, 3, 4), (1, 5, 3, 4)]), (-1, [(1, 2, 3, 4), (1, 2, 3, 1)])])
def test_concat_rule_matches_autograd(axis, shapes):
    """QConcat's split: each input gets exactly its slice of the output gradient, exponent kept."""
    g = Graph("t")
    rng = np.random.default_rng(len(shapes[1]) + axis)
    names = [act(g, f"x{i}", s, 0.1 * (i + 1), 0) for i, s in enumerate(shapes)]
    node = Node("QConcat", "cat", names, ["y"], {"axis": axis}, QDOMAIN)
    env = {n: rand_i8(rng, s) for n, s in zip(names, shapes)}
    env["y"] = run_node(node, [env[n] for n in names])
    act(g, "y", env["y"].shape, 0.2, 0)
    g.nodes = [node]
    ctx = context(g, node, env, (True, True))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    out = RULES["QConcat"].backward(ctx, node, Grad(m, -11))
    xs = [real(g, n, env[n]) for n in names]
    (torch.cat(xs, axis) * torch.tensor(m * 2.0 ** -11)).sum().backward()
    for i, X in enumerate(xs):
        assert out[i].e == -11 and np.array_equal(out[i].real(), X.grad.numpy()), i


def test_gradients_of_three_readers_add_up_like_autograd():
    """A tensor read by three nodes: add(add(g1, g2), g3) equals autograd's sum of the three
    within the roundings of the two adds: each rounds its finer side to the coarser exponent
    and then normalizes, half a unit of the respective last place each."""
    from edgeq.training.gradient import add
    rng = np.random.default_rng(21)
    x = torch.tensor(rng.normal(size=50), dtype=torch.float64, requires_grad=True)
    gs = [Grad(rng.integers(-L, L + 1, 50), e) for e in (-20, -26, -15)]
    sum((x * torch.tensor(g.real())).sum() for g in gs).backward()
    first = add(gs[0], gs[1], 16)
    total = add(first, gs[2], 16)
    bound = (2.0 ** (max(gs[0].e, gs[1].e) - 1) + 2.0 ** (first.e - 1)
             + 2.0 ** (max(first.e, gs[2].e) - 1) + 2.0 ** (total.e - 1))
    assert np.abs(total.real() - x.grad.numpy()).max() <= bound
