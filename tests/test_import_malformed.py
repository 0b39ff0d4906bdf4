"""Malformed and hostile ONNX files: each is refused with one EdgeqError line naming the
node or tensor, what is wrong and a fix, before anything is allocated or read from
outside the model's folder. Each test is the smallest reproducer of a class the fuzzer
(tests/fuzz, scripts/fuzz_onnx.py) found ending in a traceback, a crash or a hang."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.errors import EdgeqError
from edgeq.importer.load import import_onnx
from tests._onnx_builders import make_model, rand

SECRET = np.arange(12, dtype=np.float32)


@pytest.fixture(autouse=True)
def memory_cap():
    """Each test runs with 2 GiB of address space to spare: a regression that allocates what a
    file declares fails here with MemoryError instead of taking the machine's memory."""
    import resource
    from tests.fuzz.harness import ADDRESS_SPACE_HEADROOM, _vm_size
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_size()
    if vm:
        cap = vm + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def refused(model, *needles, input_shapes=None) -> str:
    with pytest.raises(EdgeqError) as e:
        import_onnx(model, input_shapes)
    msg = str(e.value)
    assert "\n" not in msg and "(fix: " in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def relu_model(x_shape=(1, 12), **kw):
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", x_shape)], [("y", None)], **kw)


def add_model(w: TensorProto):
    """y = x + w, with w a hand-made TensorProto (so its bytes and dims can disagree)."""
    m = make_model([helper.make_node("Add", ["x", w.name], ["y"], name="add")], [("x", (1, 12))], [("y", None)])
    m.graph.initializer.append(w)
    return m


# ---- external data: only inside the model's folder, sizes checked before reading ------------

def _external_model(folder, location, offset=None, length=None):
    w = numpy_helper.from_array(SECRET.copy(), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            e = w.external_data.add()
            e.key, e.value = key, str(value)
    path = folder / "model.onnx"
    onnx.save(add_model(w), str(path))
    return path


@pytest.mark.parametrize("where", ["../secret.bin", "sub/../../secret.bin", "ABSOLUTE", "link.bin", "up/secret.bin",
                                   "/dev/zero", "zero_link"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, where):
    """The file outside holds exactly the right bytes: only the path rule can refuse it."""
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "sub").mkdir()
    os.symlink("../secret.bin", folder / "link.bin")
    os.symlink("..", folder / "up")
    os.symlink("/dev/zero", folder / "zero_link")
    location = str(tmp_path / "secret.bin") if where == "ABSOLUTE" else where
    refused(_external_model(folder, location), "outside the model's folder")


def test_external_data_fifo_is_refused_without_reading(tmp_path):
    """A FIFO in the folder would block the read forever."""
    os.mkfifo(tmp_path / "pipe.bin")
    refused(_external_model(tmp_path, "pipe.bin"), "not a regular file")


@pytest.mark.parametrize("offset,length,needle", [
    (None, 1 << 40, "need 48"), (4096, None, "need 48"), (0, 24, "need 48"), (40, 48, "past the file"),
    ("abc", None, "not numbers"), (-4, None, "negative"),
])
def test_external_data_sizes_are_checked_before_reading(tmp_path, offset, length, needle):
    (tmp_path / "w.bin").write_bytes(SECRET.tobytes() + bytes(16))
    refused(_external_model(tmp_path, "w.bin", offset, length), needle, "'w'")


def test_external_data_inside_a_subfolder_loads(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.bin").write_bytes(bytes(8) + SECRET.tobytes())
    g = import_onnx(_external_model(tmp_path, "weights/w.bin", offset=8, length=48))
    assert np.array_equal(next(t.data for t in g.tensors.values() if t.is_const).reshape(-1), SECRET)


def test_external_data_missing_file(tmp_path):
    refused(_external_model(tmp_path, "gone.bin"), "not found")


# ---- stored tensors: bytes and dims must agree, and stay below the size limit ----------------

def _tensor(dims=(12,), dtype=TensorProto.FLOAT, raw=SECRET.tobytes(), floats=None):
    t = TensorProto(name="w", data_type=dtype, dims=list(dims))
    if floats is not None:
        t.float_data.extend(floats)
    else:
        t.raw_data = raw
    return t


@pytest.mark.parametrize("tensor,needle", [
    (_tensor(raw=SECRET.tobytes()[:20]), "holds 20 bytes"),
    (_tensor(floats=[1.0] * 11), "holds 11 values"),
    (_tensor(dtype=999), "unknown type 999"),
    (_tensor(dtype=TensorProto.STRING), "numeric"),
    (_tensor(dims=(-12,)), "negative dims"),
    (_tensor(dims=(1 << 20, 1 << 20)), "limit"),
    (_tensor(dims=(2, 6, 1 << 62)), "limit"),
])
def test_initializer_bytes_must_match_dims(tensor, needle):
    refused(add_model(tensor), needle, "'w'")


def _sparse_model(indices, dims=(12,), opset=13):
    values = numpy_helper.from_array(np.ones(len(indices), np.float32), "w")
    sp = helper.make_sparse_tensor(values, numpy_helper.from_array(np.asarray(indices, np.int64), "i"), list(dims))
    m = make_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [("x", (1, 12))], [("y", None)],
                   opset=opset)
    m.graph.sparse_initializer.append(sp)
    return m


@pytest.mark.parametrize("indices,dims,needle", [
    ([0, 12], (12,), "outside dims"), ([-1], (12,), "outside dims"), ([[0, 1, 2]], (12,), "do not fit"),
    ([0], (1 << 40,), "limit"),
])
def test_sparse_initializer_indices_are_checked(indices, dims, needle):
    refused(_sparse_model(indices, dims), needle)


def test_sparse_initializer_survives_the_opset_conversion():
    """The version converter did not count sparse initializers as defined ('Input w is undefined')."""
    g = import_onnx(_sparse_model([1, 5], opset=11))
    w = next(t.data for t in g.tensors.values() if t.is_const)
    assert w.reshape(-1)[[1, 5]].tolist() == [1.0, 1.0] and w.sum() == 2


# ---- nodes against their ONNX schema -----------------------------------------------------------

@pytest.mark.parametrize("node,needle", [
    (helper.make_node("Cast", ["x"], ["y"], name="n"), "lacks the required attribute 'to'"),
    (helper.make_node("Relu", ["x"], ["y"], name="n", foo=1), "attribute 'foo', which Relu does not define"),
    (helper.make_node("Softmax", ["x"], ["y"], name="n", axis=1.5), "attribute 'axis' is FLOAT"),
    (helper.make_node("BatchNormalization", ["x"], ["y"], name="n"), "has 1 inputs"),
    (helper.make_node("Add", ["x", ""], ["y"], name="n"), "required input 1"),
    (helper.make_node("Relu", ["x"], ["y", "z"], name="n"), "has 2 outputs"),
    (helper.make_node("HardSwish", ["x"], ["y"], name="n"), "does not exist in ONNX opset 13"),
    (helper.make_node("Relu", ["x"], ["y"], name="n", domain="com.microsoft"), "unsupported op Relu"),
])
def test_node_against_its_schema(node, needle):
    refused(make_model([node], [("x", (1, 12))], [("y", None)]), needle, "node 'n'")


def test_attribute_set_twice():
    node = helper.make_node("LeakyRelu", ["x"], ["y"], name="n", alpha=0.1)
    node.attribute.append(helper.make_attribute("alpha", 0.2))
    refused(make_model([node], [("x", (1, 12))], [("y", None)]), "sets attribute 'alpha' twice")


@pytest.mark.parametrize("axes", [[0.5], "TENSOR"])
def test_version_converter_sees_only_checked_nodes(axes):
    """Opset 11 -> 13 conversion of an Unsqueeze whose axes attribute has the wrong type
    killed the process (SIGSEGV in onnx's version converter)."""
    value = numpy_helper.from_array(np.array([0], np.int64)) if axes == "TENSOR" else axes
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], name="unsq"),
             helper.make_node("Squeeze", ["u"], ["y"], name="sq", axes=[0])]
    nodes[0].attribute.append(helper.make_attribute("axes", value))
    refused(make_model(nodes, [("x", (1, 12))], [("y", None)], opset=11), "Unsqueeze node 'unsq'", "'axes'")


def test_recursive_local_function():
    f = helper.make_function("local", "f", ["a"], ["b"], [helper.make_node("f", ["a"], ["b"], domain="local")],
                             opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    m = make_model([helper.make_node("f", ["x"], ["y"], name="call", domain="local")], [("x", (1, 12))],
                   [("y", None)])
    m.functions.append(f)
    m.opset_import.append(helper.make_opsetid("local", 1))
    refused(m, "cannot be inlined")


# ---- names and versions ------------------------------------------------------------------------

def test_tensor_written_twice():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"), helper.make_node("Sigmoid", ["x"], ["a"], name="r2"),
             helper.make_node("Relu", ["a"], ["y"], name="r3")]
    refused(make_model(nodes, [("x", (1, 12))], [("y", None)]), "Sigmoid node 'r2' writes tensor 'a'")


def test_node_overwrites_a_graph_input():
    nodes = [helper.make_node("Relu", ["x"], ["x"], name="r1"), helper.make_node("Relu", ["x"], ["y"], name="r2")]
    refused(make_model(nodes, [("x", (1, 12))], [("y", None)]), "the graph input already defines")


def test_graph_output_listed_twice():
    m = relu_model()
    m.graph.output.append(m.graph.output[0])
    refused(m, "listed twice")


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.opset_import.pop(), "no ONNX opset"),
    (lambda m: setattr(m.opset_import[0], "version", 99), "ONNX opset 99"),
    (lambda m: m.opset_import.append(helper.make_opsetid("", 11)), "twice"),
    (lambda m: setattr(m, "ir_version", 99), "IR version 99"),
])
def test_versions(edit, needle):
    m = relu_model()
    edit(m)
    refused(m, needle)


# ---- sizes that would need gigabytes: refused before numpy allocates --------------------------

def _bomb(op, ins: dict, attrs=None):
    """y = x + op(constants): the importer evaluates op on the spot."""
    nodes = [helper.make_node(op, list(ins), ["k"], name="bomb", **(attrs or {})),
             helper.make_node("Add", ["x", "k"], ["y"], name="add")]
    return make_model(nodes, [("x", (1, 12))], [("y", None)], ins)


@pytest.mark.parametrize("model", [
    lambda: _bomb("ConstantOfShape", {"s": np.array([1 << 20, 1 << 20], np.int64)}),
    lambda: _bomb("Expand", {"o": np.ones((1, 1), np.float32), "s": np.array([1 << 16, 1 << 16], np.int64)}),
    lambda: _bomb("Tile", {"o": np.ones((2, 2), np.float32), "r": np.array([1 << 16, 1 << 16], np.int64)}),
    lambda: _bomb("Range", {"a": np.array(0, np.float32), "b": np.array(1e12, np.float32),
                            "c": np.array(1, np.float32)}),
    lambda: _bomb("MatMul", {"a": np.ones((1 << 12, 1), np.float32), "b": np.ones((1, 1 << 13), np.float32)}),
    lambda: _bomb("Add", {"a": np.ones((1 << 12, 1), np.float32), "b": np.ones((1, 1 << 13), np.float32)}),
    lambda: _bomb("Pad", {"o": np.ones((1, 1), np.float32), "p": np.array([0, 0, 1 << 20, 1 << 20], np.int64)}),
])
def test_constant_that_would_take_gigabytes(model):
    refused(model(), "node 'bomb' on constants would compute", "limit")


def test_tile_with_more_repeats_than_axes():
    """numpy's tile adds an axis per extra repeat: 16 repeats of 6 on a (2, 2) constant took
    20 GB and 5 minutes before the error. ONNX wants one repeat per axis."""
    refused(_bomb("Tile", {"o": np.ones((2, 2), np.float32), "r": np.full(16, 6, np.int64)}),
            "node 'bomb' cannot be evaluated", "Tile repeats")


@pytest.mark.parametrize("x_shape,nodes,needle", [
    ((1, 1, 1 << 31, 4), [], "input 'x' declares"),
    ((1, 1, 2100, 2100), [], "the model's inputs hold"),
    ((1, 1, 8, 8), [helper.make_node("Pad", ["x", "p"], ["y"], name="pad")], "the output of Pad node 'pad'"),
])
def test_tensor_sizes(x_shape, nodes, needle):
    inits = {"p": np.array([0, 0, 3000, 3000, 0, 0, 3000, 3000], np.int64)}
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"], name="r")]
    refused(make_model(nodes, [("x", x_shape)], [("y", None)], inits), needle, "limit")


def test_all_activations_together():
    """Each tensor is within the limit, together they are not (calibration holds them all)."""
    nodes = [helper.make_node("Relu", [f"a{k}"], [f"a{k + 1}"], name=f"r{k}") for k in range(20)]
    nodes[0].input[0], nodes[-1].output[0] = "x", "y"
    refused(make_model(nodes, [("x", (1, 4, 1000, 1000))], [("y", None)]), "the model's activations hold")


# ---- axis 0 is the batch -------------------------------------------------------------------

def test_input_batch_must_be_one():
    """Gemm(transA) on a (6, 1) input: calibration runs a batch along axis 0 and crashed."""
    m = make_model([helper.make_node("Gemm", ["a", "B"], ["y"], name="fc", transA=1)], [("a", (6, 1))],
                   [("y", None)], {"B": rand((6, 4))})
    refused(m, "input 'a' has shape (6, 1)", "batch")


@pytest.mark.parametrize("node,b_shape", [
    (helper.make_node("Add", ["a", "b"], ["y"], name="n"), (1, 3, 3)),
    (helper.make_node("Concat", ["a", "b"], ["y"], name="n", axis=0), (1, 4, 3, 3)),
])
def test_ops_that_move_the_batch_axis(node, b_shape):
    m = make_model([node], [("a", (1, 4, 3, 3)), ("b", b_shape)], [("y", None)])
    refused(m, "node 'n' combines", "batch axis")


# ---- shapes and attributes the converters read ---------------------------------------------

def _conv(**attrs):
    return make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)], [("x", (1, 2, 8, 8))],
                      [("y", None)], {"w": rand((4, 2, 3, 3))})


@pytest.mark.parametrize("model,needle", [
    (lambda: make_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], [("x", (1, 75))], [("y", None)],
                        {"w": rand((60, 6))}), "does not fit"),
    (lambda: make_model([helper.make_node("Concat", ["x", "x"], ["y"], name="n", axis=5)], [("x", (1, 4))],
                        [("y", None)]), "axis 5 is out of range"),
    (lambda: make_model([helper.make_node("Flatten", ["x"], ["y"], name="n", axis=3)], [("x", (1, 4))],
                        [("y", None)]), "axis 3 is out of range"),
    (lambda: make_model([helper.make_node("Softmax", ["x"], ["y"], name="n", axis=-7)], [("x", (1, 4))],
                        [("y", None)]), "axis -7 is out of range"),
    (lambda: make_model([helper.make_node("Transpose", ["x"], ["y"], name="n", perm=[0, 0])], [("x", (1, 4))],
                        [("y", None)]), "not a permutation"),
    (lambda: make_model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"], name="n")], [("x", (1, 4))],
                        [("y", None)], {"ax": np.array([1, -3], np.int64)}), "repeat an axis"),
    (lambda: make_model([helper.make_node("Pad", ["x", "p"], ["y"], name="n")], [("x", (1, 4))], [("y", None)],
                        {"p": np.array([0, 1, 1], np.int64)}), "3 pads for a rank-2 tensor"),
    (lambda: _conv(strides=[1, 1, 1, 0, -2]), "must be positive"),
    (lambda: _conv(strides=[1, 1, 1]), "need 2 values each"),
    (lambda: _conv(strides=[2**63 - 1, 2**31]), "at most 65536"),
    (lambda: _conv(kernel_shape=[5, 5]), "kernel_shape [5, 5] does not match the weight's [3, 3]"),
    (lambda: make_model([helper.make_node("Slice", ["d", "s", "e", "a", "st"], ["k"], name="n"),
                         helper.make_node("Add", ["x", "k"], ["y"], name="add")], [("x", (1, 4))], [("y", None)],
                        {"d": np.ones((1, 4), np.float32), "s": np.array([0], np.int64),
                         "e": np.array([4], np.int64), "a": np.array([1], np.int64), "st": np.array([0], np.int64)}),
     "a step is 0"),  # the fold fails, then the run-time Slice converter names the cause
])
def test_shapes_and_attributes(model, needle):
    refused(model(), needle)


@pytest.mark.parametrize("model,needle", [
    (lambda: add_model(numpy_helper.from_array(np.array([np.nan] * 12, np.float32), "w")), "NaN or infinite"),
    (lambda: make_model([helper.make_node("LeakyRelu", ["x"], ["y"], name="n", alpha=float("nan"))],
                        [("x", (1, 4))], [("y", None)]), "attribute alpha is nan"),
    (lambda: make_model([helper.make_node("Div", ["x", "z"], ["y"], name="n")], [("x", (1, 4))], [("y", None)],
                        {"z": np.array([1, 0, 2, 3], np.float32)}), "divisor holds zeros"),
    (lambda: make_model([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="n",
                                          epsilon=0.0)], [("x", (1, 2, 3, 3))], [("y", None)],
                        {"g": np.ones(2, np.float32), "b": np.zeros(2, np.float32), "m": np.zeros(2, np.float32),
                         "v": np.array([1.0, -1.0], np.float32)}), "variance + epsilon"),
    (lambda: make_model([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="n")],
                        [("x", (1, 2, 3, 3))], [("y", None)],
                        {k: np.ones(3, np.float32) for k in "gbmv"}), "scale has 3 values for 2 channels"),
])
def test_values(model, needle):
    refused(model(), needle)


def test_batchnorm_folding_beyond_float32():
    from edgeq.passctx import PassContext
    from passes.fold_batchnorm import fold_batchnorm
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                    helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn", epsilon=0.0)],
                   [("x", (1, 1, 4, 4))], [("y", None)],
                   {"w": np.full((1, 1, 1, 1), 3e38, np.float32), "g": np.full(1, 3e38, np.float32),
                    "b": np.zeros(1, np.float32), "m": np.zeros(1, np.float32), "v": np.full(1, 1e-30, np.float32)})
    with pytest.raises(EdgeqError, match="BatchNormalization node 'bn'.*float32"):
        fold_batchnorm(import_onnx(m), PassContext())


def test_calibration_that_overflows_float32():
    from edgeq.calibration.calibrate import calibrate
    m = make_model([helper.make_node("Mul", ["x", "k"], ["a"], name="m1"),
                    helper.make_node("Mul", ["a", "k"], ["y"], name="m2")], [("x", (1, 4))], [("y", None)],
                   {"k": np.full((1, 4), 3e38, np.float32)})
    with pytest.raises(EdgeqError, match="overflows float32"):
        calibrate(import_onnx(m), rand((8, 4)), method="minmax", progress=False)


# ---- the error line ------------------------------------------------------------------------

def test_hostile_names_stay_one_line_on_the_command_line(tmp_path):
    """A node named with a newline, a terminal escape and rich markup ('[/]' made the CLI's
    printer raise MarkupError): still one escaped line."""
    name = "a\nb\x1b[31m[/]" + "x" * 10000
    path = tmp_path / "m.onnx"
    onnx.save(make_model([helper.make_node("Erf", ["x"], ["y"], name=name)], [("x", (1, 4))], [("y", None)]),
              str(path))
    proc = subprocess.run([sys.executable, "-m", "edgeq.cli", "compile", str(path), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unsupported op Erf"), proc.stderr
    assert "node 'a\\nb\\x1b[31m[/]xxx" in lines[0] and "(10015 chars)" in lines[0] and len(lines[0]) < 4000


def test_no_numpy_warning_on_the_way_to_an_error():
    """Gemm alpha=3.4e38 overflowed the weights with a RuntimeWarning printed above the error."""
    import warnings
    m = make_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=3.4e38)], [("x", (1, 4))],
                   [("y", None)], {"w": np.full((4, 3), 10.0, np.float32)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused(m, "NaN or infinite")
