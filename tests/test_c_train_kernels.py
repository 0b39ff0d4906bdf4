"""The C training kernels (runtime_c/include/eq_train.h) equal the Python training reference
bit for bit: each kernel on its own, each QConv/QGemm rule with its updates, and whole
training steps of a DS-CNN-shaped network driven through the C backward (np.array_equal,
never a tolerance)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edgeq.fixedpoint import multiply_by_quantized_multiplier
from edgeq.training import TrainOptions, TrainState, build_plan, train_step
from edgeq.training.gradient import Draws, Grad, limit, normalize
from edgeq.training.loss import ce_gradient, loss_params
from edgeq.training.rules import load_rules
from edgeq.training.rules.clamp import inside
from edgeq.training.rules.conv import conv_input_grad
from edgeq.training.rules.pool import _scatter
from edgeq.training.spec import LayerUpdate
from edgeq.training import step as step_module

from . import _cbuild as cb
from ._train_graphs import context, conv_graph
from .test_training_rules import CONV_CASES, _pool_graph

RULES = load_rules()
L = limit(16)


class CDraws(ctypes.Structure):
    _fields_ = [("seed", ctypes.c_uint32), ("counter", ctypes.c_uint32)]


WeightParams = cb._struct("eq_train_weight_params", ["fit", "stochastic_fit", "stochastic", "frac_bits", "qmax"])


class CMomentum(ctypes.Structure):
    _fields_ = [("mult", ctypes.c_int32), ("shift", ctypes.c_int32), ("velocity", ctypes.c_void_p)]


def c_momentum(ctx, node, which: str, shape):
    """(eq_train_momentum or None, the int32 velocity it points at) from the state's velocity."""
    c = ctx.consts(node)
    if "mu" not in c:
        return None, None
    v = cb.i32(ctx.state.velocity.get((node.name, which), np.zeros(shape, np.int64)))
    return CMomentum(int(c["mu"][0]), int(c["mu"][1]), v.ctypes.data), v


def i16(a):
    return np.ascontiguousarray(a, dtype=np.int16)


def c_draws(d: Draws) -> CDraws:
    return CDraws(d.seed, d.counter)


def conv_params(node, x_shape, y_shape, w_shape):
    a = node.attrs
    if node.op == "QGemm":
        return cb.make(cb.FcParams, batch=x_shape[0], in_features=int(np.prod(x_shape[1:])),
                       out_features=y_shape[1], x_zp=a["x_zp"], y_zp=a["y_zp"], act_min=a["act_min"],
                       act_max=a["act_max"])
    return cb.make(cb.ConvParams, batch=x_shape[0], in_c=x_shape[1], in_h=x_shape[2], in_w=x_shape[3],
                   out_c=y_shape[1], out_h=y_shape[2], out_w=y_shape[3], kernel_h=w_shape[2],
                   kernel_w=w_shape[3], stride_h=a["strides"][0], stride_w=a["strides"][1],
                   pad_top=a["pads"][0], pad_left=a["pads"][1], pad_bottom=a["pads"][2], pad_right=a["pads"][3],
                   dilation_h=a["dilations"][0], dilation_w=a["dilations"][1], groups=a["group"],
                   x_zp=a["x_zp"], y_zp=a["y_zp"], act_min=a["act_min"], act_max=a["act_max"])


# ---- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("bits,stochastic", [(16, False), (16, True), (8, False), (8, True)])
def test_normalize(bits, stochastic):
    rng = np.random.default_rng(bits + stochastic)
    cases = [np.zeros(7, np.int64), rng.integers(-3, 4, 50), rng.integers(-(1 << 20), 1 << 20, 300),
             np.array([-(1 << 31) + 1, (1 << 31) - 1, 0, 5]), np.array([1 << 14, -(1 << 14)]),
             np.array([(1 << 14) + 1, 3])]
    for acc in cases:
        d = Draws(seed=77, counter=5)
        want = normalize(acc, -20, bits, "stochastic" if stochastic else "nearest", d)
        cd, m, e = CDraws(77, 5), np.zeros(acc.size, np.int16), ctypes.c_int32()
        assert cb.call("eq_train_normalize", cb.i32(acc), acc.size, -20, bits, int(stochastic), ctypes.byref(cd),
                       m, ctypes.byref(e)) == 0
        assert np.array_equal(m, want.m) and e.value == want.e and cd.counter == d.counter


def test_normalize_in_place_on_the_accumulator():
    acc = cb.i32(np.random.default_rng(3).integers(-(1 << 25), 1 << 25, 1000))
    want = normalize(acc, 0, 16)
    e = ctypes.c_int32()
    assert cb.call("eq_train_normalize", acc, acc.size, 0, 16, 0, None, acc, ctypes.byref(e)) == 0
    assert np.array_equal(acc.view(np.int16)[:1000], want.m) and e.value == want.e


@pytest.mark.parametrize("ea,eb,stochastic", [(-20, -20, False), (-20, -23, False), (-25, -18, True),
                                              (-30, -18, True), (-18, -90, False)])
def test_gradient_sum_of_a_tensor_read_twice(ea, eb, stochastic):
    """eq_train_grad_sum + eq_train_normalize = gradient.add, in place over b's buffer."""
    from edgeq.training.gradient import add
    rng = np.random.default_rng(abs(ea - eb))
    a, b = rng.integers(-L, L + 1, 300), rng.integers(-L, L + 1, 300)
    d = Draws(seed=11, counter=3)
    want = add(Grad(a, ea), Grad(b, eb), 16, "stochastic" if stochastic else "nearest", d)
    buf = np.zeros(300, np.int32)
    buf.view(np.int16)[:300] = b  # b's int16 mantissas at the start of the int32 buffer
    cd, e = CDraws(11, 3), ctypes.c_int32()
    assert cb.call("eq_train_grad_sum", i16(a), ea, buf.view(np.int16), eb, 300, int(stochastic), ctypes.byref(cd),
                   buf, ctypes.byref(e)) == 0
    assert cb.call("eq_train_normalize", buf, 300, e.value, 16, int(stochastic), ctypes.byref(cd), buf,
                   ctypes.byref(e)) == 0
    assert np.array_equal(buf.view(np.int16)[:300], want.m) and e.value == want.e and cd.counter == d.counter


def test_widen_in_place():
    m = i16(np.random.default_rng(2).integers(-L, L + 1, 257))
    buf = np.zeros(257, np.int32)
    buf.view(np.int16)[:257] = m
    assert cb.call("eq_train_widen", buf.view(np.int16), 257, buf) == 0
    assert np.array_equal(buf, m)


def test_mask():
    rng = np.random.default_rng(4)
    y = rng.integers(-128, 128, 500).astype(np.int8)
    for lo, hi in ((-128, None), (-100, 90), (None, None)):
        m = i16(rng.integers(-L, L + 1, 500))
        want = np.where(inside(y, lo, hi), m, 0)
        assert cb.call("eq_train_mask", m, y, 500, int(lo is not None), lo or 0, int(hi is not None), hi or 0) == 0
        assert np.array_equal(m, want)


@pytest.mark.parametrize("classes,scale", [(2, 0.1), (10, 0.1077), (10, 0.5), (100, 0.02)])
def test_cross_entropy_gradient(classes, scale):
    rng = np.random.default_rng(classes)
    params = loss_params(scale)
    for _ in range(30):
        q = rng.integers(-128, 128, size=(1, classes)).astype(np.int8)
        label = int(rng.integers(0, classes))
        m, _ = ce_gradient(q, label, params)
        acc = np.zeros(classes, np.int32)
        assert cb.call("eq_train_ce_grad_s8", q, classes, label, params["input_mult"],
                       params["input_left_shift"], params["diff_min"], acc) == 0
        assert np.array_equal(acc, m.ravel())


def test_step_rounding_edges():
    """eq_train_step against update.step over shifts that round, vanish and saturate."""
    from edgeq.training.update import step
    rng = np.random.default_rng(6)
    acc = np.concatenate([rng.integers(-(1 << 31) + 1, 1 << 31, 400), [0, 1, -1, 7, -7]])
    for e in (-80, -40, -20, 0, 20, 40):
        for stochastic in (False, True):
            mult = rng.integers(1 << 30, 1 << 31, acc.size)
            shift = rng.integers(-20, 20, acc.size)
            d = Draws(9, 0)
            want = step(acc, mult, shift, e, "stochastic" if stochastic else "nearest", d)
            got = np.zeros(acc.size, np.int32)
            cd = CDraws(9, 0)
            cb.call("shim_train_step", acc.size, cb.i32(acc), cb.i32(mult), cb.i32(shift), e, int(stochastic),
                    ctypes.byref(cd), got)
            assert np.array_equal(got, want), (e, stochastic)


# ---- input gradients ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_and_fc_input_gradient(case):
    rng = np.random.default_rng(sorted(CONV_CASES).index(case) + 50)
    g, node, env = conv_graph(rng, **CONV_CASES[case])
    ctx = context(g, node, env, (True, False, False, False, False))
    c = ctx.consts(node)
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    w = g.const("w")
    ms = multiply_by_quantized_multiplier(m, c["gmult"].reshape((1, -1) + (1,) * (m.ndim - 2)),
                                          c["gshift"].reshape((1, -1) + (1,) * (m.ndim - 2)))
    want = ms @ w.astype(np.int64) if node.op == "QGemm" else conv_input_grad(node, ms, w, env["x"].shape)
    acc = np.zeros(env["x"].shape, np.int32)
    p = conv_params(node, env["x"].shape, env["y"].shape, w.shape)
    fn = "eq_train_fc_input_grad" if node.op == "QGemm" else "eq_train_conv2d_input_grad"
    assert cb.call(fn, p, i16(m), cb.i8(w), cb.i32(c["gmult"]), cb.i32(c["gshift"]), acc) == 0
    assert np.array_equal(acc, want)


def pool_params(node, x_shape, y_shape):
    a = node.attrs
    return cb.make(cb.PoolParams, batch=x_shape[0], channels=x_shape[1], in_h=x_shape[2], in_w=x_shape[3],
                   out_h=y_shape[2], out_w=y_shape[3], kernel_h=a["kernel"][0], kernel_w=a["kernel"][1],
                   stride_h=a["strides"][0], stride_w=a["strides"][1], pad_top=a["pads"][0],
                   pad_left=a["pads"][1], pad_bottom=a["pads"][2], pad_right=a["pads"][3], dilation_h=1,
                   dilation_w=1, count_include_pad=a.get("count_include_pad", 0), x_zp=a.get("x_zp", 0),
                   act_min=-128, act_max=127)


@pytest.mark.parametrize("kernel,strides,pads,include_pad,hw", [
    ((7, 7), (1, 1), (0, 0, 0, 0), 0, (7, 7)), ((3, 3), (2, 2), (1, 1, 1, 1), 0, (9, 8)),
    ((3, 3), (2, 2), (1, 1, 1, 1), 1, (9, 8)), ((2, 2), (1, 1), (0, 0, 0, 0), 0, (5, 5))])
def test_avgpool_input_gradient(kernel, strides, pads, include_pad, hw):
    rng = np.random.default_rng(sum(hw))
    g, node, env = _pool_graph(rng, "QAvgPool", (2, 3) + hw, kernel, strides, pads, include_pad)
    ctx = context(g, node, env, (True,))
    c = ctx.consts(node)
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    want = _scatter(node, env["x"].shape, multiply_by_quantized_multiplier(m, c["pmult"][c["counts"]],
                                                                          c["pshift"][c["counts"]]))
    acc = np.zeros(env["x"].shape, np.int32)
    size = kernel[0] * kernel[1] + 1
    assert cb.call("eq_train_avgpool_input_grad", pool_params(node, env["x"].shape, env["y"].shape), i16(m),
                   cb.i32(c["pmult"][:size]), cb.i32(c["pshift"][:size]), acc) == 0
    assert np.array_equal(acc, want)


# ---- a layer's backward with its updates ----------------------------------------------------

def c_layer_backward(ctx, node, g: Grad, env) -> Grad | None:
    """The QConv/QGemm rule through the C kernels: mask, input gradient + normalize, bias
    update, weight update, on the context's state (in place), like rules/conv.backward."""
    c, st, opts = ctx.consts(node), ctx.state, ctx.plan.options
    m = i16(g.m)
    if c["lo"] is not None or c["hi"] is not None:
        cb.call("eq_train_mask", m, cb.i8(ctx.kept(node.outputs[0])), m.size, int(c["lo"] is not None), c["lo"] or 0,
                int(c["hi"] is not None), c["hi"] or 0)
    x_shape, y_shape = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    p = conv_params(node, x_shape, y_shape, ctx.weight(node).shape)
    cd = c_draws(st.draws)
    out = None
    if ctx.wants(node, 0):
        acc = np.zeros(x_shape, np.int32)
        fn = "eq_train_fc_input_grad" if node.op == "QGemm" else "eq_train_conv2d_input_grad"
        assert cb.call(fn, p, m, cb.i8(ctx.weight(node)), cb.i32(c["gmult"]), cb.i32(c["gshift"]), acc) == 0
        gm, e = np.zeros(acc.size, np.int16), ctypes.c_int32()
        assert cb.call("eq_train_normalize", acc, acc.size, g.e - c["gexp"], opts.grad_bits,
                       int(opts.rounding == "stochastic"), ctypes.byref(cd), gm, ctypes.byref(e)) == 0
        out = Grad(gm.reshape(x_shape).astype(np.int64), e.value)
    upd = ctx.update(node)
    if upd is not None and upd.bias:
        positions = int(np.prod(y_shape[2:])) if node.op == "QConv" else 1
        mu, v = c_momentum(ctx, node, "bias", st.biases[node.name].shape)
        assert cb.call("eq_train_bias_update", y_shape[0], y_shape[1], positions, m, g.e, cb.i32(c["bmult"]),
                       cb.i32(c["bshift"]), c["blimit"], mu, st.biases[node.name]) == 0
        if v is not None:
            st.velocity[(node.name, "bias")] = v.astype(np.int64)
    if upd is not None and upd.weights:
        ci = x_shape[1] if node.op == "QConv" else int(np.prod(x_shape[1:]))
        sel = None
        if upd.channels is not None:
            sel = np.zeros(ci, np.uint8)
            sel[list(upd.channels)] = 1
        u = cb.make(WeightParams, fit=c["wfit"], stochastic_fit=int(opts.rounding == "stochastic"),
                    stochastic=int(opts.weight_update == "stochastic"), frac_bits=c["frac_bits"], qmax=c["qmax"])
        res = st.residuals.get(node.name)
        fn = "eq_train_fc_weight_update" if node.op == "QGemm" else "eq_train_conv2d_weight_update"
        mu, v = c_momentum(ctx, node, "weights", st.weights[node.name].shape)
        assert cb.call(fn, p, u, cb.i8(ctx.kept(node.inputs[0])), m, g.e, cb.i32(c["wmult"]), cb.i32(c["wshift"]),
                       sel, ctypes.byref(cd), mu, st.weights[node.name], res) == 0
        if v is not None:
            st.velocity[(node.name, "weights")] = v.astype(np.int64)
    st.draws.counter = cd.counter
    return out


@pytest.mark.parametrize("case", sorted(CONV_CASES))
@pytest.mark.parametrize("mode", ["master", "stochastic"])
def test_conv_and_fc_rule_with_updates(case, mode):
    rng = np.random.default_rng(sorted(CONV_CASES).index(case) + 90)
    g, node, env = conv_graph(rng, **CONV_CASES[case])
    opts = TrainOptions(lr=0.02, weight_update=mode, rounding="stochastic" if mode == "stochastic" else "nearest")
    ci = env["x"].shape[1] if node.op == "QConv" else env["x"].shape[1]
    channels = tuple(range(0, ci, 2)) if case in ("conv3x3", "gemm") else None
    upd = LayerUpdate("layer", bias=True, weights=True, channels=channels)
    py = context(g, node, env, (True, False, False, False, False), upd, opts)
    cc = context(g, node, env, (True, False, False, False, False), upd, opts)
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    want = RULES[node.op].backward(py, node, Grad(m, -16))[0]
    got = c_layer_backward(cc, node, Grad(m, -16), env)
    assert np.array_equal(got.m, want.m) and got.e == want.e
    assert np.array_equal(cc.state.weights["layer"], py.state.weights["layer"])
    assert np.array_equal(cc.state.biases["layer"], py.state.biases["layer"])
    if mode == "master":
        assert np.array_equal(cc.state.residuals["layer"], py.state.residuals["layer"])
    assert cc.state.draws.counter == py.state.draws.counter
    assert not np.array_equal(py.state.weights["layer"], g.const("w"))


# ---- whole steps --------------------------------------------------------------------------------

def c_backward(plan, state, env, label):
    """The backward of a training step through the C kernels (QGemm, QConv, QAvgPool, QReshape)."""
    ctx = step_module.Backward(plan, state, env)
    cd = c_draws(state.draws)
    acc = np.zeros(env[plan.logits].size, np.int32)
    loss = plan.loss
    assert cb.call("eq_train_ce_grad_s8", cb.i8(env[plan.logits]), acc.size, int(label), loss["input_mult"],
                   loss["input_left_shift"], loss["diff_min"], acc) == 0
    m, e = np.zeros(acc.size, np.int16), ctypes.c_int32()
    cb.call("eq_train_normalize", acc, acc.size, -14, plan.options.grad_bits, int(plan.options.rounding == "stochastic"),
            ctypes.byref(cd), m, ctypes.byref(e))
    state.draws.counter = cd.counter
    grads = {plan.logits: Grad(m.reshape(env[plan.logits].shape).astype(np.int64), e.value)}
    for node in plan.backward:
        g = grads.pop(node.outputs[0])
        if node.op in ("QConv", "QGemm"):
            gx = c_layer_backward(ctx, node, g, env)
        elif node.op == "QReshape":
            gx = Grad(g.m.reshape(ctx.shape(node.inputs[0])), g.e)
        elif node.op == "QAvgPool":
            c = ctx.consts(node)
            x_shape = ctx.shape(node.inputs[0])
            acc = np.zeros(x_shape, np.int32)
            cb.call("eq_train_avgpool_input_grad", pool_params(node, x_shape, g.m.shape), i16(g.m),
                    cb.i32(c["pmult"]), cb.i32(c["pshift"]), acc)
            gm, e = np.zeros(acc.size, np.int16), ctypes.c_int32()
            cd = c_draws(state.draws)
            cb.call("eq_train_normalize", acc, acc.size, g.e - c["pexp"], plan.options.grad_bits,
                    int(plan.options.rounding == "stochastic"), ctypes.byref(cd), gm, ctypes.byref(e))
            state.draws.counter = cd.counter
            gx = Grad(gm.reshape(x_shape).astype(np.int64), e.value)
        else:
            raise AssertionError(node.op)
        if gx is not None:
            grads[node.inputs[0]] = gx


@pytest.fixture(scope="module")
def dscnn_like(tmp_path_factory):
    """conv 3x3 s2, depthwise 3x3, pointwise, depthwise 3x3 s2, pointwise, global pool, FC."""
    import torch
    from torch import nn
    import edgeq
    from edgeq.reference.interpreter import quantize_inputs
    from ._onnx_builders import export_legacy

    def cbr(cin, cout, k, s, g=1):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=g), nn.ReLU()]
    torch.manual_seed(0)
    net = nn.Sequential(*cbr(1, 8, 3, 2), *cbr(8, 8, 3, 1, 8), *cbr(8, 12, 1, 1), *cbr(12, 12, 3, 2, 12),
                        *cbr(12, 16, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    path = export_legacy(net, (1, 1, 16, 16), tmp_path_factory.mktemp("d") / "dscnn_like.onnx")
    rng = np.random.default_rng(0)
    calib = rng.uniform(0, 1, (32, 1, 16, 16)).astype(np.float32)
    q = edgeq.compile(str(path), target="reference", calib=calib).qgraph
    return q, quantize_inputs(q, {q.inputs[0]: calib[:6]})[q.inputs[0]], rng.integers(0, 10, 6)


@pytest.mark.parametrize("spec,options", [
    ("last:5", TrainOptions(lr=0.05)),
    ("bias", TrainOptions(lr=0.05)),
    ("last:3", TrainOptions(lr=0.05, weight_update="stochastic", rounding="stochastic", grad_bits=8)),
    ("last:3", TrainOptions(lr=0.05, momentum=0.9)),
])
def test_training_steps_through_the_c_backward_are_bit_exact(dscnn_like, spec, options):
    qgraph, x, labels = dscnn_like
    plan = build_plan(qgraph, spec, options)
    py, cs = TrainState(plan), TrainState(plan)
    for i in range(len(x)):
        train_step(plan, py, x[i:i + 1], labels[i])
        env = step_module.forward(plan, cs, x[i:i + 1])  # the forward is inference, already bit-exact in C
        c_backward(plan, cs, env, labels[i])
    for name in plan.updates:
        for table in ("weights", "biases", "residuals"):
            a, b = getattr(py, table).get(name), getattr(cs, table).get(name)
            assert (a is None and b is None) or np.array_equal(a, b), (name, table)
    assert py.velocity.keys() == cs.velocity.keys() and bool(py.velocity) == bool(options.momentum)
    for key, v in py.velocity.items():
        assert np.array_equal(v, cs.velocity[key]), key
    assert py.draws.counter == cs.draws.counter
    first = next(iter(plan.updates))
    assert not np.array_equal(py.biases[first], qgraph.const(qgraph.node_by_name(first).inputs[2]))


# ---- routing ops: max pool, data movement, broadcast add, momentum ----------------------------

@pytest.mark.parametrize("kernel,strides,pads,hw,ties", [
    ((3, 3), (2, 2), (1, 1, 1, 1), (6, 7), False), ((2, 2), (2, 2), (0, 0, 0, 0), (8, 8), True),
    ((3, 3), (1, 1), (1, 1, 1, 1), (5, 5), True), ((2, 3), (1, 2), (0, 1, 1, 0), (5, 9), True)])
def test_maxpool_input_gradient(kernel, strides, pads, hw, ties):
    """Overlapping windows sum; among equal values the first tap in kernel row-major order wins
    (x drawn from 3 values: most windows hold ties); padding never wins."""
    rng = np.random.default_rng(sum(hw) + ties)
    g, node, env = _pool_graph(rng, "QMaxPool", (1, 2) + hw, kernel, strides, pads)
    if ties:
        env["x"] = rng.integers(-3, 0, env["x"].shape).astype(np.int8)  # only the backward reads x
    ctx = context(g, node, env, (True,))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    want = RULES["QMaxPool"].backward(ctx, node, Grad(m, -15))[0]
    acc = np.zeros(env["x"].shape, np.int32)
    assert cb.call("eq_train_maxpool_input_grad", pool_params(node, env["x"].shape, env["y"].shape),
                   cb.i8(env["x"]), i16(m), acc) == 0
    gm, e = np.zeros(acc.size, np.int16), ctypes.c_int32()
    assert cb.call("eq_train_normalize", acc, acc.size, -15, 16, 0, None, gm, ctypes.byref(e)) == 0
    assert np.array_equal(gm.reshape(acc.shape), want.m) and e.value == want.e
    assert np.count_nonzero(acc) > 0


def _gather_args(view: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(shape, element strides, offset) of a numpy view into np.arange(size): what
    eq_train_gather_grad reads, found by numpy rather than by the code generator's arithmetic."""
    return cb.i32(view.shape), cb.i32(np.array(view.strides) // view.itemsize), int(view.flat[0])


def _rule_graph(op, x_shapes, **attrs):
    from edgeq.ir import Graph, Node
    from edgeq.reference import run_node
    from edgeq.ir import QDOMAIN
    from ._train_graphs import act
    g = Graph("t")
    rng = np.random.default_rng(len(x_shapes))
    names = [act(g, f"x{i}", s, 0.1, 0) for i, s in enumerate(x_shapes)]
    node = Node(op, op, names, ["y"], attrs, QDOMAIN)
    env = {n: rng.integers(-128, 128, s).astype(np.int8) for n, s in zip(names, x_shapes)}
    env["y"] = run_node(node, [env[n] for n in names])
    act(g, "y", env["y"].shape, 0.1, 0)
    g.nodes = [node]
    return g, node, env


@pytest.mark.parametrize("op,x_shapes,attrs,views", [
    ("QTranspose", [(1, 3, 4, 5)], {"perm": [0, 2, 3, 1]}, lambda y: [np.transpose(y, np.argsort([0, 2, 3, 1]))]),
    ("QTranspose", [(2, 3, 4, 5, 2)], {"perm": [0, 2, 1, 4, 3]},
     lambda y: [np.transpose(y, np.argsort([0, 2, 1, 4, 3]))]),
    ("QTranspose", [(3, 4)], {}, lambda y: [y.T]),
    ("QPad", [(1, 3, 4, 5)], {"pads": [0, 0, 1, 2, 0, 0, 3, 0]}, lambda y: [y[:, :, 1:5, 2:7]]),
    ("QConcat", [(1, 2, 3, 4), (1, 5, 3, 4)], {"axis": 1}, lambda y: [y[:, :2], y[:, 2:]]),
    ("QConcat", [(1, 2, 3, 4), (1, 2, 3, 1), (1, 2, 3, 2)], {"axis": -1},
     lambda y: [y[..., :4], y[..., 4:5], y[..., 5:]]),
])
def test_data_movement_gradients(op, x_shapes, attrs, views):
    """eq_train_gather_grad with the strides of the inverse numpy view equals each rule."""
    g, node, env = _rule_graph(op, x_shapes, **attrs)
    ctx = context(g, node, env, (True,) * len(x_shapes))
    m = np.random.default_rng(7).integers(-L, L + 1, size=env["y"].shape)
    want = RULES[op].backward(ctx, node, Grad(m, -13))
    index = np.arange(m.size).reshape(m.shape)
    for i, view in enumerate(views(index)):
        shape, strides, offset = _gather_args(view)
        out = np.zeros(x_shapes[i], np.int16)
        assert cb.call("eq_train_gather_grad", i16(m), len(shape), shape, strides, offset, out) == 0
        assert want[i].e == -13 and np.array_equal(out, want[i].m), i


@pytest.mark.parametrize("b_shape,relu", [((1, 4, 1, 1), False), ((1, 1, 5, 1), True), ((1, 4, 5, 5), True)])
def test_add_gradients_with_a_broadcast_input(b_shape, relu):
    """Mask, then the same-shape input widens and the broadcast one sums over its stretched axes."""
    from .test_training_rules import _add_graph
    rng = np.random.default_rng(len(b_shape) + relu + 30)
    g, node, env = _add_graph(rng, b_shape, relu)
    ctx = context(g, node, env, (True, True))
    m = rng.integers(-L, L + 1, size=env["y"].shape)
    want = RULES["QAdd"].backward(ctx, node, Grad(m, -20))
    c = ctx.consts(node)
    mm = i16(m)
    cb.call("eq_train_mask", mm, cb.i8(env["y"]), mm.size, int(c["lo"] is not None), c["lo"] or 0,
            int(c["hi"] is not None), c["hi"] or 0)
    for i, shape in ((0, (1, 4, 5, 5)), (1, b_shape)):
        strides = cb.i32(np.array(np.broadcast_to(np.zeros(shape, np.int8), m.shape).strides))  # int8: element strides
        acc = np.zeros(int(np.prod(shape)), np.int32)
        assert cb.call("eq_train_unbroadcast", mm, 4, cb.i32(m.shape), strides, acc.size, acc) == 0
        gm, e = np.zeros(acc.size, np.int16), ctypes.c_int32()
        assert cb.call("eq_train_normalize", acc, acc.size, -20, 16, 0, None, gm, ctypes.byref(e)) == 0
        assert np.array_equal(gm.reshape(shape), want[i].m) and e.value == want[i].e, i


def test_gradients_of_a_tensor_read_three_times_sum_in_backward_order():
    """The C step's running sum (grad_sum + normalize after the 2nd and the 3rd reader) equals
    the reference's add(add(g1, g2), g3), stochastic rounding included."""
    from edgeq.training.gradient import add
    rng = np.random.default_rng(12)
    gs = [Grad(rng.integers(-L, L + 1, 200), e) for e in (-20, -23, -17)]
    d = Draws(seed=5, counter=9)
    want = add(add(gs[0], gs[1], 16, "stochastic", d), gs[2], 16, "stochastic", d)
    cd, e = CDraws(5, 9), ctypes.c_int32(gs[0].e)
    run = i16(gs[0].m)
    for g in gs[1:]:
        buf = np.zeros(200, np.int32)
        buf.view(np.int16)[:200] = g.m
        assert cb.call("eq_train_grad_sum", run, e.value, buf.view(np.int16), g.e, 200, 1, ctypes.byref(cd), buf,
                       ctypes.byref(e)) == 0
        assert cb.call("eq_train_normalize", buf, 200, e.value, 16, 1, ctypes.byref(cd), buf, ctypes.byref(e)) == 0
        run = buf.view(np.int16)[:200].copy()
    assert np.array_equal(run, want.m) and e.value == want.e and cd.counter == d.counter


@pytest.mark.parametrize("case", ["conv3x3", "gemm", "depthwise_s2"])
def test_momentum_updates_over_several_steps(case):
    """Three backward passes of one layer with momentum 0.9: weights, residuals, biases and both
    velocities equal the reference's after each (the velocity carries the earlier steps)."""
    rng = np.random.default_rng(sorted(CONV_CASES).index(case) + 130)
    g, node, env = conv_graph(rng, **CONV_CASES[case])
    opts = TrainOptions(lr=0.02, momentum=0.9)
    ci = env["x"].shape[1]
    upd = LayerUpdate("layer", bias=True, weights=True, channels=tuple(range(0, ci, 2)) if case == "gemm" else None)
    py = context(g, node, env, (False, False, False, False, False), upd, opts)
    cc = context(g, node, env, (False, False, False, False, False), upd, opts)
    for step in range(3):
        m = rng.integers(-L, L + 1, size=env["y"].shape)
        RULES[node.op].backward(py, node, Grad(m, -16 - step))
        c_layer_backward(cc, node, Grad(m, -16 - step), env)
        for table in ("weights", "biases", "residuals"):
            assert np.array_equal(getattr(cc.state, table)["layer"], getattr(py.state, table)["layer"]), (step, table)
        for key in (("layer", "weights"), ("layer", "bias")):
            assert np.array_equal(cc.state.velocity[key], py.state.velocity[key]), (step, key)
    assert np.any(py.state.velocity[("layer", "weights")] != 0)
    if upd.channels is not None:  # unselected weights never move and keep a zero velocity
        assert not np.any(py.state.velocity[("layer", "weights")][:, 1::2])
