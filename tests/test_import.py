"""import_onnx: real files (MLPerf Tiny, both torch exporters) and hand-built graphs for
every attribute form, each checked against onnxruntime; bad inputs raise EdgeqError;
onnx_io round trips."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeq.errors import EdgeqError
from edgeq.floatexec.executor import run_float
from edgeq.ir import QDOMAIN, Graph, Node, QParams, Tensor
from edgeq.importer.load import import_onnx
from edgeq.graphio.onnx_io import graph_to_onnx, load_graph, save_graph
from edgeq.graphio.verify import FLOAT_OPS, verify
from tests._onnx_builders import exported, make_model, ort_per_sample, ort_run, rand
from tests.conftest import MLPERF, MLPERF_MODELS, mlperf_model

TOL = dict(rtol=1e-4, atol=1e-4)


def _check_against_ort(model, graph, batch=3, seed=0):
    """run_float on a batch equals onnxruntime sample by sample, for every output."""
    feeds = {n: rand((batch,) + graph.tensors[n].shape[1:], seed + k) for k, n in enumerate(graph.inputs)}
    got = run_float(graph, feeds)
    for i in range(batch):
        ref = ort_run(model, {k: v[i:i + 1] for k, v in feeds.items()})
        # one onnxruntime array per graph output, or zip() would compare fewer (or none)
        assert len(ref) == len(graph.outputs) > 0, (len(ref), graph.outputs)
        for name, r in zip(graph.outputs, ref):
            np.testing.assert_allclose(got[name][i:i + 1], r, **TOL)


def _canonical(graph):
    verify(graph)
    assert set(graph.ops()) <= set(FLOAT_OPS)
    assert all(n.name for n in graph.nodes)
    assert len({n.name for n in graph.nodes}) == len(graph.nodes)


# ---- real models -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", MLPERF_MODELS + ["kws01/alt"])
def test_mlperf_models_match_onnxruntime(name):
    path = (MLPERF / "kws01" / "alt_model_from_savedmodel.onnx") if name == "kws01/alt" else mlperf_model(name)
    if not path.is_file():
        pytest.skip(f"{path} absent")
    g = import_onnx(path)
    _canonical(g)
    assert "MatMul" not in g.ops() and "Gemm" in g.ops()
    _check_against_ort(str(path), g)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("net", ["convbn", "acts", "select"])
def test_torch_exports_match_onnxruntime(net, exporter):
    path, shape = exported(net, exporter)
    g = import_onnx(path)
    _canonical(g)
    if exporter == "legacy":
        assert "BatchNormalization" in g.ops()  # kept by do_constant_folding=False
    assert g.tensors["x"].shape == shape
    _check_against_ort(str(path), g)


def test_torch_hardswish_is_one_node():
    path, _ = exported("acts", "legacy")
    g = import_onnx(path)
    assert "HardSwish" in g.ops() and "HardSigmoid" not in g.ops()


# ---- hand-built graphs: attribute forms ------------------------------------------------------

def _conv_model(attrs, x_shape=(1, 4, 9, 8), w_shape=(6, 2, 3, 3), bias=True):
    inits = {"W": rand(w_shape, 1)}
    ins = ["x", "W"]
    if bias:
        inits["B"] = rand((w_shape[0],), 2)
        ins.append("B")
    node = helper.make_node("Conv", ins, ["y"], **attrs)
    return make_model([node], [("x", x_shape)], [("y", None)], inits)


@pytest.mark.parametrize("attrs", [
    dict(group=2, strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(group=2, strides=[2, 1], auto_pad="SAME_LOWER"),  # onnxruntime rejects SAME + dilation
    dict(group=2, auto_pad="VALID"),
    dict(group=2, pads=[0, 1, 2, 1], strides=[2, 2]),    # asymmetric explicit pads
    dict(group=2, pads=[1, 1, 1, 1], dilations=[2, 2]),
])
def test_conv_padding_forms(attrs):
    m = _conv_model(attrs)
    g = import_onnx(m)
    _canonical(g)
    assert len(g.nodes) == 1 and len(g.nodes[0].attrs["pads"]) == 4
    _check_against_ort(m, g)


def test_conv_depthwise_without_bias_gets_zero_bias():
    m = _conv_model(dict(group=4, pads=[1, 1, 1, 1]), w_shape=(8, 1, 3, 3), bias=False)
    g = import_onnx(m)
    conv = g.nodes[0]
    assert conv.attrs["group"] == 4 and np.all(g.const(conv.inputs[2]) == 0)
    _check_against_ort(m, g)


def test_conv1d_becomes_2d():
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], pads=[2, 1], strides=[2])
    m = make_model([node], [("x", (1, 3, 20))], [("y", None)], {"W": rand((5, 3, 4)), "B": rand((5,))})
    g = import_onnx(m)
    _canonical(g)
    assert g.tensors["y"].shape == (1, 5, 10)
    _check_against_ort(m, g)


@pytest.mark.parametrize("attrs,a_shape,b_shape,c_shape", [
    (dict(transB=1, alpha=0.5, beta=2.0), (1, 6), (4, 6), (4,)),
    (dict(), (1, 6), (6, 4), (1, 4)),
])
def test_gemm_forms(attrs, a_shape, b_shape, c_shape):
    inits = {"B": rand(b_shape, 1)}
    ins = ["a", "B"]
    if c_shape:
        inits["C"] = rand(c_shape, 2)
        ins.append("C")
    m = make_model([helper.make_node("Gemm", ins, ["y"], **attrs)], [("a", a_shape)], [("y", None)], inits)
    g = import_onnx(m)
    _canonical(g)
    assert "Gemm" in g.ops()
    feeds = {"a": rand(a_shape, 3)}
    np.testing.assert_allclose(run_float(g, feeds)["y"], ort_run(m, feeds)[0], **TOL)


def test_gemm_transA():
    """transA reads a (K, N) operand: here a transposed activation, so axis 0 of the
    model's input stays the batch (an input (K, 1) itself is refused: tests/test_import_malformed.py)."""
    nodes = [helper.make_node("Transpose", ["a"], ["t"], perm=[1, 0]),
             helper.make_node("Gemm", ["t", "B"], ["y"], transA=1)]
    m = make_model(nodes, [("a", (1, 6))], [("y", None)], {"B": rand((6, 4), 1)})
    g = import_onnx(m)
    _canonical(g)
    feeds = {"a": rand((1, 6), 3)}
    np.testing.assert_allclose(run_float(g, feeds)["y"], ort_run(m, feeds)[0], **TOL)


def test_matmul_rank3_left_operand():
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [("x", (1, 5, 6))], [("y", None)],
                   {"W": rand((6, 3))})
    g = import_onnx(m)
    _canonical(g)
    _check_against_ort(m, g)


def test_shape_arithmetic_is_folded():
    """Shape -> Gather -> Unsqueeze -> Concat -> Cast -> Reshape collapses to one Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus1"], ["shp"], axis=0),
        helper.make_node("Cast", ["shp"], ["shp64"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "shp64"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = {"i0": np.array(0, np.int64), "ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    m = make_model(nodes, [("x", (1, 2, 3, 4))], [("y", None)], inits)
    g = import_onnx(m)
    assert g.ops() == ["Reshape", "Relu"] and g.nodes[0].attrs["shape"] == [1, 24]
    _check_against_ort(m, g)


def test_misc_ops_against_onnxruntime():
    """Sub/Div by constants, Clip via inputs, Squeeze/Unsqueeze with axes inputs, Flatten,
    Reshape with 0, Pad with value, ReduceMean, Softmax, Constant nodes, Transpose."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(v), name))  # noqa: E731
    nodes = [
        c("k", np.full((1, 3, 1, 1), 0.5, np.float32)),
        helper.make_node("Sub", ["x", "k"], ["a"]),
        helper.make_node("Div", ["a", "two"], ["b"]),
        helper.make_node("Clip", ["b", "lo", ""], ["cl"]),
        helper.make_node("Pad", ["cl", "pads", "pv"], ["p"], mode="constant"),
        helper.make_node("MaxPool", ["p"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 3], pads=[1, 1, 0, 1], ceil_mode=1),
        helper.make_node("ReduceMean", ["ap"], ["rm"], axes=[2, 3], keepdims=1),
        helper.make_node("Squeeze", ["rm", "ax23"], ["sq"]),
        helper.make_node("Unsqueeze", ["sq", "ax1"], ["us"]),
        helper.make_node("Flatten", ["us"], ["fl"], axis=1),
        helper.make_node("Reshape", ["fl", "shp0"], ["rs"]),
        helper.make_node("Transpose", ["rs"], ["tr"], perm=[1, 0]),
        helper.make_node("Transpose", ["tr"], ["tr2"]),
        helper.make_node("Softmax", ["tr2"], ["y"], axis=1),
        helper.make_node("Sub", ["x", "x2"], ["d"]),
        helper.make_node("LeakyRelu", ["d"], ["z"], alpha=0.2),
    ]
    inits = {"two": np.array(2.0, np.float32), "lo": np.array(-0.3, np.float32),
             "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64), "pv": np.array(0.25, np.float32),
             "ax23": np.array([2, 3], np.int64), "ax1": np.array([1], np.int64),
             "shp0": np.array([0, -1], np.int64)}
    m = make_model(nodes, [("x", (1, 3, 11, 10)), ("x2", (1, 3, 11, 10))], [("y", None), ("z", None)], inits)
    g = import_onnx(m)
    _canonical(g)
    assert "Sub" not in g.ops() and "Div" not in g.ops()
    _check_against_ort(m, g)


def test_activation_forms_against_onnxruntime():
    """Standalone HardSigmoid (not a hardswish), Dropout with a ratio input, scalar PRelu,
    Clip with only a max attribute-free input, Tanh."""
    nodes = [helper.make_node("HardSigmoid", ["x"], ["hs"], alpha=0.3, beta=0.4),
             helper.make_node("Mul", ["x", "hs"], ["m"]),
             helper.make_node("Dropout", ["m", "ratio"], ["d"]),
             helper.make_node("PRelu", ["d", "slope"], ["p"]),
             helper.make_node("Clip", ["p", "", "hi"], ["c"]),
             helper.make_node("Tanh", ["c"], ["y"])]
    inits = {"ratio": np.array(0.5, np.float32), "slope": np.array([0.25], np.float32),
             "hi": np.array(0.7, np.float32)}
    m = make_model(nodes, [("x", (1, 3, 4, 4))], [("y", None)], inits)
    g = import_onnx(m)
    _canonical(g)
    assert g.ops() == ["HardSigmoid", "Mul", "Identity", "PRelu", "Clip", "Tanh"]
    assert g.const(g.nodes[3].inputs[1]).shape == (1, 1, 1)
    clip = g.nodes[4]
    assert clip.attrs["min"] == -np.inf and clip.attrs["max"] == pytest.approx(0.7)
    _check_against_ort(m, g)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter is meant here
def test_initializers_listed_as_inputs(tmp_path):
    """Old exporters (keep_initializers_as_inputs=True) list weights as graph inputs."""
    import torch
    from tests._onnx_builders import ConvBnNet
    path = tmp_path / "kept.onnx"
    torch.onnx.export(ConvBnNet().eval(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                      opset_version=13, keep_initializers_as_inputs=True, input_names=["x"])
    g = import_onnx(path)
    assert g.inputs == ["x"]
    _check_against_ort(str(path), g)


def test_opset18_reduce_and_pad_axes():
    nodes = [helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"]),
             helper.make_node("ReduceMean", ["p", "rax"], ["y"], keepdims=0)]
    inits = {"pads": np.array([1, 2, 0, 1], np.int64), "axes": np.array([2, 3], np.int64),
             "rax": np.array([-1, -2], np.int64)}
    m = make_model(nodes, [("x", (1, 4, 5, 6))], [("y", None)], inits, opset=18)
    g = import_onnx(m)
    _canonical(g)
    assert "GlobalAveragePool" in g.ops() and g.tensors["y"].shape == (1, 4)
    _check_against_ort(m, g)


@pytest.mark.parametrize("shape,axes,keep", [((1, 5, 6), [-1], 1), ((1, 6), [1], 0), ((1, 2, 3, 4), [1, 2, 3], 0),
                                             ((1, 2, 3, 4), [3], 1)])
def test_reduce_mean_over_trailing_axes(shape, axes, keep):
    m = make_model([helper.make_node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=keep)],
                   [("x", shape)], [("y", None)])
    g = import_onnx(m)
    _canonical(g)
    assert "GlobalAveragePool" in g.ops()
    _check_against_ort(m, g)


def test_old_opset_is_converted():
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),
             helper.make_node("Squeeze", ["u"], ["s"], axes=[0]),
             helper.make_node("Clip", ["s"], ["y"], min=0.0, max=6.0)]
    m = make_model(nodes, [("x", (1, 3))], [("y", None)], opset=10)
    g = import_onnx(m)
    clip = [n for n in g.nodes if n.op == "Clip"][0]
    assert (clip.attrs["min"], clip.attrs["max"]) == (0.0, 6.0)


def test_folded_min_max_broadcast():
    """Min/Max of constants of different shapes (ONNX broadcasts) were refused as 'unsupported op Min'."""
    nodes = [helper.make_node("Min", ["a", "b"], ["k0"], name="min"), helper.make_node("Max", ["k0", "c"], ["k"]),
             helper.make_node("Mul", ["x", "k"], ["y"])]
    m = make_model(nodes, [("x", (1, 4))], [("y", None)],
                   {"a": rand((1, 4), 1), "b": np.array(0.5, np.float32), "c": np.array([-0.5], np.float32)})
    g = import_onnx(m)
    _check_against_ort(m, g)


def test_clip_without_bounds_runs():
    """Clip with neither bound is the identity (valid ONNX); float execution raised."""
    m = make_model([helper.make_node("Clip", ["x"], ["y"])], [("x", (1, 4))], [("y", None)])
    g = import_onnx(m)
    x = rand((3, 4))
    assert np.array_equal(run_float(g, {"x": x})["y"], x)


def test_rank1_result_runs_batched_in_the_integer_reference():
    """ReduceMean(keepdims=0) of a (1, 8) tensor is rank 1: a batch of N had no axis to keep
    (QReshape raised 'cannot reshape array of size 4 into shape (1,)' in the host build)."""
    from edgeq.reference.interpreter import run_reference
    from edgeq.driver.pipeline import CompileOptions, compile_model
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "ax"], ["y"])]
    m = make_model(nodes, [("x", (1, 8))], [("y", None)], {"ax": np.array([1], np.int64)})
    q = compile_model(m, CompileOptions(progress=False), log=lambda _: None).qgraph
    xs = np.random.default_rng(0).integers(-128, 128, (4, 8)).astype(np.int8)
    batched = run_reference(q, {"x": xs})["y"]
    one_by_one = np.concatenate([run_reference(q, {"x": xs[i:i + 1]})["y"] for i in range(4)])
    assert batched.shape == (4, 1) and np.array_equal(batched, one_by_one)


def test_external_data(tmp_path):
    m = _conv_model(dict(pads=[1, 1, 1, 1], group=2))
    path = tmp_path / "ext.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").is_file()
    g = import_onnx(path)
    _check_against_ort(str(path), g)  # onnx.save moved m's weights out to the file
    (tmp_path / "ext.data").unlink()
    with pytest.raises(EdgeqError, match="external"):
        import_onnx(path)


def test_names_are_unique_and_non_empty():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name=""), helper.make_node("Relu", ["a"], ["b"], name="n"),
             helper.make_node("Relu", ["b"], ["y"], name="n")]
    g = import_onnx(make_model(nodes, [("x", (1, 4))], [("y", None)]))
    names = [n.name for n in g.nodes]
    assert all(names) and len(set(names)) == 3


def test_invented_names_never_collide_with_later_file_names():
    """The importer names Gemm's weight '<node>/W'; a later tensor may already be called that."""
    nodes = [helper.make_node("Gemm", ["x", "B"], ["h"], name="fc"),
             helper.make_node("Relu", ["h"], ["fc/W"]),
             helper.make_node("Relu", ["fc/W"], ["y"])]
    m = make_model(nodes, [("x", (1, 4))], [("y", None)], {"B": rand((4, 3))})
    g = import_onnx(m)
    _canonical(g)
    _check_against_ort(m, g)


# ---- dynamic shapes and bad input ------------------------------------------------------------

def test_dynamic_dim_needs_input_shape():
    m = _conv_model(dict(pads=[1, 1, 1, 1], group=2), x_shape=("N", 4, "h", 8))
    with pytest.raises(EdgeqError) as e:
        import_onnx(m)
    # the real shape, the batch pinned to 1, only the unknown dim open
    assert "--input-shape x=1x4xHx8 with H set to a number" in str(e.value)
    g = import_onnx(m, {"x": (1, 4, 9, 8)})
    assert g.tensors["x"].shape == (1, 4, 9, 8)
    _check_against_ort(m, g)
    with pytest.raises(EdgeqError, match="not an input"):
        import_onnx(m, {"nope": (1, 4, 9, 8)})
    with pytest.raises(EdgeqError, match="contradicts"):
        import_onnx(m, {"x": (1, 3, 9, 8)})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter is meant here
def test_torch_dynamic_batch_export_with_input_shapes(tmp_path):
    """Shape-dependent code (x.view(x.shape[0], -1)) exports Shape/Gather chains; with the
    batch pinned they fold into a static Reshape."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            y = self.c(x)
            return self.fc(y.view(y.shape[0], -1))

    path = tmp_path / "dyn.onnx"
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"], dynamic_axes={"x": {0: "N"}})
    g = import_onnx(path)  # the dynamic batch axis becomes 1
    assert g.meta["import_notes"] == ["dynamic batch axis of 'x' compiled as batch 1 (edgeq runs one sample at a time)"]
    assert g.tensors["x"].shape == (1, 3, 8, 8)
    g = import_onnx(path, {"x": (1, 3, 8, 8)})
    assert g.ops() == ["Conv", "Reshape", "Gemm"]
    _check_against_ort(str(path), g)


def test_unsupported_op_names_op_node_and_supported_list():
    m = make_model([helper.make_node("Erf", ["x"], ["y"], name="my_erf")], [("x", (1, 4))], [("y", None)])
    with pytest.raises(EdgeqError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "Erf" in msg and "my_erf" in msg and "Conv" in msg and "HardSwish" in msg


@pytest.mark.parametrize("bad", [
    lambda: make_model([helper.make_node("MatMul", ["x", "x2"], ["y"])], [("x", (2, 2)), ("x2", (2, 2))], [("y", None)]),
    lambda: make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", (1, 3, 4))], [("y", None)]),
    lambda: make_model([helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [("x", (1, 3))], [("y", None)],
                       {"p": np.array([0, 3, 0, 1], np.int64)}),  # reflects more than the axis holds
    lambda: make_model([helper.make_node("Pow", ["x", "x2"], ["y"])], [("x", (1, 2)), ("x2", (1, 2))], [("y", None)]),
    lambda: make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", (1, 1, 4, 4)), ("w", (1, 1, 3, 3))], [("y", None)]),
    lambda: make_model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[0, 1])], [("x", (1, 3))], [("y", None)]),
    lambda: make_model([helper.make_node("MaxPool", ["x"], ["y"])], [("x", (1, 3, 4, 4))], [("y", None)]),  # no kernel
])
def test_unsupported_forms_raise(bad):
    with pytest.raises(EdgeqError):
        import_onnx(bad())


def test_bad_files(tmp_path):
    with pytest.raises(EdgeqError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx")
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(EdgeqError):
        import_onnx(text)
    good = _conv_model(dict(group=2)).SerializeToString()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(EdgeqError):
        import_onnx(trunc)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(EdgeqError):
        import_onnx(empty)


# ---- onnx_io round trips ------------------------------------------------------------------------

def _same_graph(a: Graph, b: Graph):
    assert a.inputs == b.inputs and a.outputs == b.outputs and a.name == b.name
    assert len(a.nodes) == len(b.nodes)
    for n, m in zip(a.nodes, b.nodes):
        assert (n.op, n.name, n.inputs, n.outputs, n.domain) == (m.op, m.name, m.inputs, m.outputs, m.domain)
        assert n.attrs.keys() == m.attrs.keys(), n.name
        for k, v in n.attrs.items():
            w = m.attrs[k]
            assert type(v) is type(w) and np.array_equal(v, w), (n.name, k, v, w)
    assert set(a.tensors) == set(b.tensors)
    for k, t in a.tensors.items():
        u = b.tensors[k]
        assert (t.shape, t.dtype) == (u.shape, u.dtype), k
        assert (t.data is None) == (u.data is None) and (t.data is None or np.array_equal(t.data, u.data)), k
        assert (t.q is None) == (u.q is None), k
        if t.q is not None:
            assert t.q.to_dict() == u.q.to_dict() and t.q.scale.shape == u.q.scale.shape, k


def test_float_graph_round_trip_runs_in_onnxruntime(tmp_path):
    from edgeq.passctx import PassContext
    from edgeq.passes.fold_batchnorm import fold_batchnorm
    from edgeq.passes.fuse_activation import fuse_activation
    path, shape = exported("convbn", "legacy")
    g = fuse_activation(fold_batchnorm(import_onnx(path), PassContext()), PassContext())
    assert any("act_max" in n.attrs for n in g.nodes)
    g.meta["note"] = {"arr": np.arange(3.0), "x": 1 / 3}
    save_graph(g, tmp_path / "f.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "f.onnx")), full_check=True)
    g2 = load_graph(tmp_path / "f.onnx")
    _same_graph(g, g2)
    assert np.array_equal(g2.meta["note"]["arr"], np.arange(3.0)) and g2.meta["note"]["x"] == 1 / 3
    x = rand((1,) + shape[1:], 5)
    np.testing.assert_allclose(ort_run(str(tmp_path / "f.onnx"), {"x": x})[0], run_float(g, {"x": x})["y"], **TOL)
    np.testing.assert_allclose(ort_run(str(path), {"x": x})[0], run_float(g2, {"x": x})["y"], **TOL)


def test_quantized_graph_round_trip_is_lossless(tmp_path):
    g = Graph("q")
    qa = QParams(np.array(0.05), np.array(-3))
    g.add_tensor(Tensor("x", (1, 2, 4, 4), "int8", q=qa))
    g.add_tensor(Tensor("y", (1, 3, 4, 4), "int8", q=QParams(np.array(0.1 / 3), np.array(7))))
    w = g.add_const("w", np.arange(-9, 9, dtype=np.int8).reshape(3, 2, 3, 1),
                    q=QParams(np.array([0.01, 0.02, 1 / 3]), np.zeros(3, np.int64), bits=4, axis=0))
    b = g.add_const("b", np.array([1, -2, 3], np.int32))
    mult = g.add_const("m", np.array([1 << 30] * 3, np.int32))
    sh = g.add_const("s", np.array([-3, -4, -5], np.int32))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes.append(Node("QConv", "conv", ["x", w, b, mult, sh], ["y"],
                        {"strides": [1, 1], "pads": [1, 0, 1, 0], "dilations": [1, 1], "group": 1,
                         "x_zp": -3, "y_zp": 7, "act_min": -128, "act_max": 127, "fn": "conv",
                         "ratio": 1 / 3, "recips": np.array([1, 2, 3], np.int32), "empty": []}, QDOMAIN))
    g.meta["quant_layers"] = {"conv": {"scales": np.array([0.1, 0.2]), "bound": 123}}
    verify(g)
    proto = graph_to_onnx(g)
    assert proto.graph.quantization_annotation and proto.ir_version <= 10
    save_graph(g, tmp_path / "q.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")))
    g2 = load_graph(tmp_path / "q.onnx")
    _same_graph(g, g2)
    verify(g2)
    assert isinstance(g2.nodes[0].attrs["recips"], np.ndarray)
    assert np.array_equal(g2.meta["quant_layers"]["conv"]["scales"], [0.1, 0.2])


def test_load_graph_of_a_plain_onnx_file_imports_it(tmp_path):
    m = _conv_model(dict(group=2))
    onnx.save(m, str(tmp_path / "plain.onnx"))
    g = load_graph(tmp_path / "plain.onnx")
    assert g.ops() == ["Conv"]


def test_every_unsupported_op_is_listed_at_once_with_its_nodes():
    nodes = [helper.make_node("Erf", ["x"], ["a"], name="erf_a"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Erf", ["b"], ["c"], name="erf_b"),
             helper.make_node("Gelu", ["c"], ["d"], name="gelu", domain="com.example"),
             helper.make_node("Acos", ["d"], ["y"], name="acos")]
    m = make_model(nodes, [("x", (1, 4))], [("y", None)])
    with pytest.raises(EdgeqError) as e:
        import_onnx(m)
    assert str(e.value).startswith("3 unsupported ops: Erf in nodes 'erf_a', 'erf_b'; "
                                   "Gelu (domain 'com.example') in node 'gelu'; Acos in node 'acos' "
                                   "(fix: replace them in the model before export; supported ops: ")


def test_many_nodes_of_one_unsupported_op_are_counted():
    nodes = [helper.make_node("Erf", [f"t{i}"], [f"t{i + 1}"], name=f"e{i}") for i in range(8)]
    m = make_model(nodes, [("t0", (1, 4))], [("t8", None)])
    with pytest.raises(EdgeqError, match=r"^unsupported op Erf in nodes 'e0', 'e1', 'e2', 'e3', 'e4' and 3 more "):
        import_onnx(m)


def test_ops_edgeq_only_folds_are_listed_when_they_meet_activations():
    """Acos is unknown; Floor is evaluated only on constants: both refused in one error,
    while a Floor of constants (feeding the Reshape) is fine."""
    nodes = [helper.make_node("Floor", ["x"], ["a"], name="floor_act"),
             helper.make_node("Floor", ["shape_f"], ["shape_fl"], name="floor_const"),
             helper.make_node("Cast", ["shape_fl"], ["shape"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["a", "shape"], ["b"], name="reshape"),
             helper.make_node("Acos", ["b"], ["y"], name="acos")]
    m = make_model(nodes, [("x", (1, 4))], [("y", None)], {"shape_f": np.array([1, 4], np.float32)})
    with pytest.raises(EdgeqError, match=r"^2 unsupported ops: Floor in node 'floor_act'; Acos in node 'acos' "):
        import_onnx(m)
