"""Generated C on the host equals the integer reference, byte for byte.

Graphs are built by hand with edgeq.ir (tiny, per op); `qgraph_*` builders are reused by
tests/test_mcu.py. The oracle is edgeq.reference.interpreter.run_reference.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from edgeq.codegen import generate_c
from edgeq.codegen.names import NameTable, sanitize
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.interpreter import run_reference
from edgeq.ir import Graph, Node, QParams, Tensor, QDOMAIN
from edgeq.options import BuildOptions
from edgeq.codegen import plan_memory

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc is missing")


# ---- hand-built quantized graphs ------------------------------------------------------------

class G:
    """A tiny builder: g.x(shape) declares the input; g.conv(...) etc. append nodes."""

    def __init__(self, name="g", seed=0):
        self.g = Graph(name)
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def _t(self, name, shape, zp=0):
        self.g.add_tensor(Tensor(name, tuple(shape), "int8", None, QParams(0.05, zp)))
        return name

    def x(self, shape, name="input", zp=3):
        self.g.inputs.append(self._t(name, shape, zp))
        return name

    def node(self, op, inputs, shape, attrs, name=None):
        self.k += 1
        name = name or f"{op.lower()}/{self.k};x"
        y = self._t(f"{name}:out", shape, int(attrs.get("y_zp", 0)))
        self.g.nodes.append(Node(op, name, inputs, [y], attrs, QDOMAIN))
        return y

    def requant_params(self, co, shift=-7):
        mult = self.rng.integers(1 << 30, (1 << 31) - 1, size=co).astype(np.int32)
        return mult, np.full(co, shift, np.int32)

    def conv(self, x, co, k=3, stride=1, pads=(1, 1, 1, 1), group=1, dil=1, relu=False, bias=True):
        n, ci, h, w = self.g.tensors[x].shape
        kh, kw = (k, k) if isinstance(k, int) else k
        wt = self.rng.integers(-127, 128, size=(co, ci // group, kh, kw)).astype(np.int8)
        mult, shift = self.requant_params(co, -8 if ci // group * kh * kw > 8 else -5)
        ins = [x, self.g.add_const(f"w{self.k}", wt)]
        ins.append(self.g.add_const(f"b{self.k}", self.rng.integers(-3000, 3000, co).astype(np.int32)) if bias else "")
        ins += [self.g.add_const(f"m{self.k}", mult), self.g.add_const(f"s{self.k}", shift)]
        ho = (h + pads[0] + pads[2] - dil * (kh - 1) - 1) // stride + 1
        wo = (w + pads[1] + pads[3] - dil * (kw - 1) - 1) // stride + 1
        zp = int(self.g.tensors[x].q.zero_point)
        attrs = {"strides": [stride, stride], "pads": list(pads), "dilations": [dil, dil], "group": group,
                 "x_zp": zp, "y_zp": -5, "act_min": -5 if relu else -128, "act_max": 127}
        return self.node("QConv", ins, (n, co, ho, wo), attrs)

    def gemm(self, x, co):
        shape = self.g.tensors[x].shape
        k = int(np.prod(shape[1:]))
        wt = self.rng.integers(-127, 128, size=(co, k)).astype(np.int8)
        mult, shift = self.requant_params(co, -9)
        ins = [x, self.g.add_const("fc_w", wt), self.g.add_const("fc_b", self.rng.integers(-999, 999, co).astype(np.int32)),
               self.g.add_const("fc_m", mult), self.g.add_const("fc_s", shift)]
        zp = int(self.g.tensors[x].q.zero_point)
        return self.node("QGemm", ins, (shape[0], co), {"x_zp": zp, "y_zp": 2, "act_min": -128, "act_max": 127})

    def add(self, a, b, shape=None):
        attrs = {"a_zp": int(self.g.tensors[a].q.zero_point), "b_zp": int(self.g.tensors[b].q.zero_point),
                 "y_zp": 1, "left_shift": 20, "a_mult": 1 << 30, "a_shift": -1, "b_mult": 1518500250,
                 "b_shift": -1, "y_mult": 1 << 30, "y_shift": -18, "act_min": -128, "act_max": 127}
        return self.node("QAdd", [a, b], shape or self.g.tensors[a].shape, attrs)

    def pool(self, op, x, k, stride, pads=(0, 0, 0, 0), include_pad=0):
        n, c, h, w = self.g.tensors[x].shape
        ho = (h + pads[0] + pads[2] - k) // stride + 1
        wo = (w + pads[1] + pads[3] - k) // stride + 1
        attrs = {"kernel": [k, k], "strides": [stride, stride], "pads": list(pads), "dilations": [1, 1],
                 "act_min": -128, "act_max": 127}
        if op == "QAvgPool":
            recip, rshift = avgpool_recips(k, k)
            attrs.update(count_include_pad=include_pad, recip=recip, rshift=rshift,
                         x_zp=int(self.g.tensors[x].q.zero_point))
        return self.node(op, [x], (n, c, ho, wo), attrs)

    def reshape(self, x, shape):
        return self.node("QReshape", [x], shape, {"shape": [0] + list(shape[1:])})  # batch-agnostic

    def lut(self, x):
        table = self.g.add_const("lut", self.rng.integers(-128, 128, 256).astype(np.int8))
        return self.node("QLut", [x, table], self.g.tensors[x].shape, {"fn": "random"})

    def requant(self, x):
        attrs = {"x_zp": int(self.g.tensors[x].q.zero_point), "y_zp": 7, "mult": 1 << 30, "shift": 1}
        return self.node("QRequant", [x], self.g.tensors[x].shape, attrs)

    def const_i8(self, shape, zp=2):
        data = self.rng.integers(-128, 128, shape).astype(np.int8)
        return self.g.add_const("k8", data, QParams(0.05, zp))

    def mul(self, a, b, shape=None):
        attrs = {"a_zp": int(self.g.tensors[a].q.zero_point), "b_zp": int(self.g.tensors[b].q.zero_point),
                 "y_zp": -3, "y_mult": 1 << 30, "y_shift": -6, "act_min": -128, "act_max": 127}
        return self.node("QMul", [a, b], shape or self.g.tensors[a].shape, attrs)

    def prelu(self, x, per_channel=True):
        c = self.g.tensors[x].shape[1] if per_channel else 1
        k = lambda n, a: self.g.add_const(n, np.asarray(a, np.int32))  # noqa: E731
        ins = [x, k("pm", [1 << 30]), k("ps", [1]), k("nm", self.rng.integers(1 << 30, 1 << 31, c)),
               k("ns", self.rng.integers(-4, 0, c)), k("sg", self.rng.choice([-1, 0, 1], c))]
        return self.node("QPrelu", ins, self.g.tensors[x].shape,
                         {"x_zp": int(self.g.tensors[x].q.zero_point), "y_zp": 4, "act_min": -128, "act_max": 127})

    def softmax(self, x, axis=-1):
        from edgeq.reference.softmax import softmax_params
        attrs = {"axis": axis, **softmax_params(0.1)}
        return self.node("QSoftmax", [x], self.g.tensors[x].shape, attrs)

    def concat(self, xs, axis):
        shape = list(self.g.tensors[xs[0]].shape)
        shape[axis] = sum(self.g.tensors[x].shape[axis] for x in xs)
        return self.node("QConcat", list(xs), tuple(shape), {"axis": axis})

    def transpose(self, x, perm):
        shape = tuple(self.g.tensors[x].shape[p] for p in perm)
        return self.node("QTranspose", [x], shape, {"perm": list(perm)})

    def pad(self, x, pads, value=-7):
        r = len(self.g.tensors[x].shape)
        shape = tuple(d + pads[i] + pads[r + i] for i, d in enumerate(self.g.tensors[x].shape))
        return self.node("QPad", [x], shape, {"pads": list(pads), "value": value})

    def gather(self, x, axis, indices):
        shape = list(self.g.tensors[x].shape)
        shape[axis] = len(indices)
        return self.node("QGather", [x], shape, {"axis": axis, "indices": list(indices)})

    def matmul(self, a, b):
        sa, sb = self.g.tensors[a].shape, self.g.tensors[b].shape
        shape = tuple(np.broadcast_shapes(sa[:-2], sb[:-2])) + (sa[-2], sb[-1])
        mult, shift = self.requant_params(1, -12)
        return self.node("QMatMul", [a, b], shape, {"a_zp": 3, "b_zp": -2, "y_zp": 1, "y_mult": int(mult[0]),
                                                    "y_shift": int(shift[0]), "act_min": -128, "act_max": 127})

    def resize_bilinear(self, x, out_hw, mode="half_pixel"):
        from edgeq.reference.resize import bilinear_table
        n, c, h, w = self.g.tensors[x].shape
        return self.node("QResizeBilinear", [x], (n, c) + tuple(out_hw), {
            "y_table": bilinear_table(h, out_hw[0], mode), "x_table": bilinear_table(w, out_hw[1], mode)})

    def conv1d(self, x, co, k=3, stride=2, pads=(2, 1), dil=2):
        n, ci, length = self.g.tensors[x].shape
        wt = self.rng.integers(-127, 128, size=(co, ci, k)).astype(np.int8)
        mult, shift = self.requant_params(co, -7)
        ins = [x, self.g.add_const("w1d", wt), self.g.add_const("b1d", np.zeros(co, np.int32)),
               self.g.add_const("m1d", mult), self.g.add_const("s1d", shift)]
        lo = (length + pads[0] + pads[1] - dil * (k - 1) - 1) // stride + 1
        attrs = {"strides": [stride], "pads": list(pads), "dilations": [dil], "group": 1,
                 "x_zp": int(self.g.tensors[x].q.zero_point), "y_zp": 0, "act_min": -128, "act_max": 127}
        return self.node("QConv", ins, (n, co, lo), attrs)

    def done(self, *outs):
        self.g.outputs = list(outs)
        return self.g


def qgraph_conv(seed=0):
    """The end-to-end smoke graph: conv -> relu conv stride 2 -> flatten -> gemm."""
    b = G("conv_smoke", seed)
    x = b.x((1, 3, 8, 8))
    y = b.conv(x, 4)
    y = b.conv(y, 6, stride=2, relu=True)
    y = b.reshape(y, (1, 6 * 4 * 4))
    return b.done(b.gemm(y, 5))


def qgraph_ops(seed=1):
    """Every common op once: depthwise, asymmetric pads, residual add, pools, LUT, requant."""
    b = G("ops", seed)
    x = b.x((1, 4, 9, 7))
    a = b.conv(x, 8, k=(3, 2), pads=(0, 1, 2, 0))
    d = b.conv(a, 8, group=8, stride=2, pads=(1, 1, 1, 1))
    d2 = b.conv(d, 8, k=1, pads=(0, 0, 0, 0), bias=False)
    s = b.add(d, d2)
    m = b.pool("QMaxPool", s, 2, 1, pads=(0, 0, 1, 1))
    l = b.lut(m)
    r = b.requant(l)
    g = b.pool("QAvgPool", r, 3, 2, pads=(1, 1, 1, 1))
    return b.done(b.gemm(b.reshape(g, (1, 8 * 3 * 2)), 10))


def per_op_graphs():
    """One small graph per op or attribute form (name -> builder)."""
    def one(name, build):
        def make():
            b = G(name, 11)
            return b.done(*build(b))
        make.__name__ = name
        return make
    x4 = lambda b, shape=(1, 4, 6, 5): b.x(shape)  # noqa: E731
    return [
        one("conv_depthwise_mult2", lambda b: [b.conv(x4(b), 8, group=4, stride=2)]),
        one("conv_dilated_asym", lambda b: [b.conv(x4(b), 3, k=(2, 3), pads=(2, 0, 1, 3), dil=2)]),
        one("conv_1d", lambda b: [b.conv1d(b.x((1, 3, 17)), 4)]),
        one("gemm_4d_input", lambda b: [b.gemm(x4(b), 7)]),
        one("add_broadcast_const", lambda b: [b.add(x4(b), b.const_i8((1, 4, 1, 1)))]),
        one("mul_broadcast_const", lambda b: [b.mul(b.const_i8((1, 1, 1, 5)), x4(b), (1, 4, 6, 5))]),
        one("add_rank2", lambda b: [b.add(b.x((1, 6)), b.const_i8((6,)))]),
        one("prelu", lambda b: [b.prelu(x4(b)), ]),
        one("prelu_shared", lambda b: [b.prelu(x4(b), per_channel=False)]),
        one("avgpool_include_pad", lambda b: [b.pool("QAvgPool", x4(b), 3, 2, (1, 1, 1, 1), include_pad=1)]),
        one("maxpool_pad", lambda b: [b.pool("QMaxPool", x4(b), 3, 2, (1, 0, 1, 1))]),
        one("softmax_last", lambda b: [b.softmax(b.x((1, 10)))]),
        one("softmax_axis1", lambda b: [b.softmax(x4(b), axis=1)]),
        one("concat_axis1", lambda b: (lambda x: [b.concat([x, b.lut(x), x], 1)])(x4(b))),
        one("concat_axis3", lambda b: (lambda x: [b.concat([x, b.requant(x)], 3)])(x4(b))),
        one("transpose", lambda b: [b.transpose(x4(b), (0, 2, 3, 1))]),
        one("pad", lambda b: [b.pad(x4(b), (0, 1, 2, 0, 0, 0, 1, 3))]),
        one("gather_w_reflect", lambda b: [b.gather(x4(b), 3, (2, 1, 0, 1, 2, 3, 4, 3))]),
        one("gather_c_slice", lambda b: [b.gather(b.gather(x4(b), 1, (1, 3)), 2, (0, 0, 5, 5))]),
        one("matmul_broadcast", lambda b: [b.matmul(b.x((1, 3, 4, 5)), b.x((1, 1, 5, 2), name="input_b"))]),
        one("resize_bilinear", lambda b: [b.resize_bilinear(x4(b), (11, 4), "align_corners")]),
        one("reshape_output", lambda b: [b.reshape(b.lut(x4(b)), (1, 120))]),
    ]


def qgraph_all_ops():
    """Every per-op graph side by side in one multi-input, multi-output graph: one
    firmware per board covers every kernel."""
    import copy
    merged = Graph("all_ops")
    for k, make in enumerate(per_op_graphs()):
        g = make()
        rename = {t: f"g{k}/{t}" for t in g.tensors}
        for t in g.tensors.values():
            t2 = copy.copy(t)
            t2.name = rename[t.name]
            merged.add_tensor(t2)
        for n in g.nodes:
            merged.nodes.append(Node(n.op, f"g{k}/{n.name}", [rename.get(i, i) for i in n.inputs],
                                     [rename[o] for o in n.outputs], dict(n.attrs), n.domain))
        merged.inputs += [rename[i] for i in g.inputs]
        merged.outputs += [rename[o] for o in g.outputs]
    return merged


def rand_feeds(g, n, seed=5):
    rng = np.random.default_rng(seed)
    return {name: rng.integers(-128, 128, (n,) + g.tensors[name].shape[1:], dtype=np.int8) for name in g.inputs}


def check_target(target, g, tmp_path, n=3, scratch="fast"):
    """Build with test vectors (self-check), then run a batch; both must match the reference."""
    report = {}
    target.build(g, tmp_path, report, BuildOptions(rand_feeds(g, 2, seed=9), scratch=scratch))
    assert report["self_check"]["passed"], report["self_check"]
    feeds = rand_feeds(g, n)
    got = target.run(tmp_path, feeds)
    want = run_reference(g, feeds)
    for name in g.outputs:
        assert np.array_equal(got[name], want[name]), name
    return report


# ---- tests ---------------------------------------------------------------------------------

def host():
    from edgeq.targets import get_target
    return get_target("host")


@pytest.mark.parametrize("builder", [qgraph_conv, qgraph_ops])
def test_host_equals_reference(builder, tmp_path):
    rep = check_target(host(), builder(), tmp_path)
    assert rep["arena_bytes"] > 0 and rep["flash_bytes"] > 0


@pytest.mark.parametrize("builder", per_op_graphs(), ids=lambda b: b.__name__)
def test_host_per_op(builder, tmp_path):
    check_target(host(), builder(), tmp_path)


def test_host_all_ops_in_one_graph(tmp_path):
    g = qgraph_all_ops()
    assert len(g.inputs) >= len(per_op_graphs()) and len(g.outputs) >= len(per_op_graphs())  # matmul: 2 inputs
    check_target(host(), g, tmp_path)


def test_names_sanitized():
    t = NameTable()
    assert sanitize("model/conv2d;BiasAdd:0") == "model_conv2d_BiasAdd_0"
    assert sanitize("3x") == "t_3x" and sanitize("int") == "t_int"
    assert t.get("a/b", "in_") != t.get("a;b", "in_")


def test_hostile_names_compile(tmp_path):
    """Names that would end a C comment or collide after sanitizing still give valid C."""
    g = qgraph_conv()
    g.name = "model */ int x; /*"
    g.nodes[0].name = "conv*/;1"
    g.nodes[1].name = "conv/*;1"
    check_target(host(), g, tmp_path)


def test_generated_c_is_integer_only(tmp_path):
    g = qgraph_ops()
    h, c = generate_c(g, plan_memory(g), tmp_path, profile_marks=True)
    code = re.sub(r"/\*.*?\*/", "", c.read_text() + h.read_text(), flags=re.S)
    for word in ("float", "double", "malloc", "free(", "calloc"):
        assert word not in code
    assert not re.search(r"[^/*]/[^/*]", code.replace("#include", "")), "no division"
    assert "%" not in code
    assert code.count("EDGEQ_LAYER_MARK(") == len(g.nodes) + 1 + 2  # + the two macro definitions


def test_registry_and_host_profile(tmp_path):
    from edgeq.errors import EdgeqError
    from edgeq.targets import all_targets, get_target
    names = [t.name for t in all_targets()]
    assert {"reference", "host", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"} <= set(names)
    assert all(t.description and "\n" not in t.description for t in all_targets())
    with pytest.raises(EdgeqError, match="cortex-m7"):
        get_target("cortex-m9")
    g = qgraph_conv()
    t = get_target("host")
    t.build(g, tmp_path, {}, rand_feeds(g, 1))
    prof = t.profile(tmp_path, "host")
    assert prof["wall_time_s"] > 0 and "instructions" not in prof
    with pytest.raises(EdgeqError):
        t.profile(tmp_path, "adb")


def test_multi_io_graph(tmp_path):
    """Two inputs, two outputs: per-tensor pointers in edgeq_model_run, data in order."""
    b = G("two", 3)
    x1 = b.x((1, 2, 5, 5), name="in/a")
    x2 = b.x((1, 2, 5, 5), name="in;b", zp=-4)
    s = b.add(x1, x2)
    g = b.done(b.conv(s, 3), b.lut(s))
    check_target(host(), g, tmp_path)
    h = (tmp_path / "src" / "model.h").read_text()
    assert "int edgeq_model_run(const int8_t *in_in_a, const int8_t *in_in_b, int8_t *out_" in h
    assert "#define EDGEQ_NUM_INPUTS 2" in h and "#define EDGEQ_INPUT1_ZERO_POINT -4" in h


def _null_scratch_layers(model_c: str) -> int:
    """Conv / FC kernel calls in a generated model.c that pass NULL as their scratch buffer
    (`eq_conv2d_s8(&p, x, w, bias, mult, shift, scratch, y)`: the one before the output)."""
    calls = re.findall(r"\beq_(?:conv2d|fully_connected)\w*\(([^()]*)\)", model_c)
    assert calls, "no conv / fc call found in model.c"
    return sum(c.split(",")[-2].strip() == "NULL" for c in calls)


def test_scratch_policy_always_gives_every_layer_its_scratch_and_stays_exact(tmp_path):
    """--scratch always: every QConv/QGemm gets its im2col scratch (none runs the direct
    loops, none passes NULL in model.c), the arena is the one that plan says, and the build
    gives the integer reference's bytes. The default 'fit' plan of the same model leaves
    some layers without scratch, so the two policies really differ here."""
    from edgeq import cli
    from edgeq.models.fmnist import available, load_fmnist, preprocess
    from edgeq.models.registry import model_path
    from edgeq.graphio.onnx_io import load_graph
    from edgeq.targets import get_target
    from edgeq.reference.interpreter import quantize_inputs
    if not available():
        pytest.skip("Fashion-MNIST data is absent (Debian package dataset-fashion-mnist)")
    x, _ = load_fmnist("train")
    np.save(tmp_path / "calib.npy", preprocess(x[:16]))
    built = {}
    for policy in ("fit", "always"):
        out = tmp_path / policy
        assert cli.main(["compile", str(model_path("dscnn")), "-t", "host", "--calib",
                         str(tmp_path / "calib.npy"), "-o", str(out), "--scratch", policy, "-q"]) in (0, None)
        rep = json.loads((out / "report.json").read_text())
        assert rep["self_check"]["passed"] and rep["memory_plan"]["scratch_policy"] == policy
        g = load_graph(out / "model.q.onnx")
        plan = plan_memory(g, scratch=policy)
        assert rep["arena_bytes"] == plan.arena_bytes  # the plan the build used
        built[policy] = (out, g, plan, _null_scratch_layers((out / "src" / "model.c").read_text()))
    out, g, plan, nulls = built["always"]
    layers = [n.name for n in g.nodes if n.op in ("QConv", "QGemm")]
    assert plan.direct == [] and set(layers) <= set(plan.scratch) and nulls == 0
    _, _, fit, fit_nulls = built["fit"]
    assert fit.direct and fit_nulls == len(fit.direct) and plan.arena_bytes > fit.arena_bytes
    test_x, _ = load_fmnist("test")
    feeds = quantize_inputs(g, {g.inputs[0]: preprocess(test_x[:8])})
    got = get_target("host").run(out, feeds)
    want = run_reference(g, feeds)
    assert all(np.array_equal(got[o], want[o]) for o in g.outputs)
