"""A dynamic batch axis compiles as batch 1 with a note; other dynamic dims still need
--input-shape, and the hint names the model's real shape with only the unknown dims open.

Models come from both torch exporters (the legacy TorchScript one with dynamic_axes, the
dynamo one with torch.export.Dim) and from hand-built ONNX (a symbolic dim, dim_value 0,
dim_value -1); the imported graph is checked against onnxruntime on the same input.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.errors import EdgeqError
from edgeq.importer.load import import_onnx

from .test_cli_errors import assert_clean_failure, edgeq

NOTE = "dynamic batch axis of 'x' compiled as batch 1"


def _net():
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.c, self.fc = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 5)

        def forward(self, x):
            y = torch.relu(self.c(x)).mean(dim=(2, 3))
            return self.fc(y.flatten(1))
    return Net().eval()


def _export(path, dynamo: bool, dims: dict[int, str]):
    """The test net exported with the given axes of input x dynamic."""
    import torch
    x = torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            spec = {i: torch.export.Dim(n, min=2 if i else 1, max=64) for i, n in dims.items()}
            torch.onnx.export(_net(), (x,), str(path), dynamo=True, dynamic_shapes={"x": spec},
                              verbose=False)
        else:
            torch.onnx.export(_net(), (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": dims})
    return path


def _same_as_ort(model, g):
    """The imported graph computes what onnxruntime computes for one sample (onnxruntime
    reads a leading dim_value 0 or -1 literally, so it runs a copy declaring batch 1)."""
    import onnxruntime as ort

    from edgeq.floatexec.executor import run_float
    proto = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    d = fixed.graph.input[0].type.tensor_type.shape.dim[0]
    if d.HasField("dim_value"):
        d.dim_value = 1
    x = np.random.default_rng(0).normal(size=g.tensors["x"].shape).astype(np.float32)
    sess = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    got = run_float(g, {"x": x})[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # float import, not an integer path


def _hand_built(dim0):
    """Conv + Relu whose input's leading dim is `dim0` (a str: symbolic; an int: dim_value)."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    d = x.type.tensor_type.shape.dim[0]
    if isinstance(dim0, str):
        d.dim_param = dim0
    else:
        d.dim_value = dim0
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Relu", ["c"], ["y"])], "g", [x], [y], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("dim0", ["N", 0, -1], ids=["symbolic", "zero", "minus-one"])
def test_hand_built_dynamic_batch_becomes_1(dim0, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_hand_built(dim0), path)
    g = import_onnx(path)
    assert g.tensors["x"].shape == (1, 3, 8, 8)
    assert g.meta["import_notes"][0].startswith(NOTE)
    _same_as_ort(path, g)


def test_a_fixed_batch_gives_no_note():
    assert "import_notes" not in import_onnx(_hand_built(1)).meta


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_export_with_dynamic_batch_compiles_without_flags(dynamo, tmp_path):
    path = _export(tmp_path / "m.onnx", dynamo, {0: "batch"})
    g = import_onnx(path)
    assert g.tensors["x"].shape == (1, 3, 8, 8)
    _same_as_ort(path, g)
    out = tmp_path / "out"
    proc = edgeq("compile", path, "-o", out, "--target", "reference")
    assert proc.returncode == 0, proc.stderr
    assert NOTE in proc.stderr  # one line, as a note
    assert any(n.startswith(NOTE) for n in json.loads((out / "report.json").read_text())["notices"])


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_other_dynamic_dims_name_the_real_shape(dynamo, tmp_path):
    path = _export(tmp_path / "m.onnx", dynamo, {0: "batch", 2: "height", 3: "width"})
    with pytest.raises(EdgeqError) as e:
        import_onnx(path)
    msg = str(e.value)
    assert "has dynamic dims [1x3xHxW]" in msg
    assert "--input-shape x=1x3xHxW with H and W set to numbers" in msg
    out = tmp_path / "out"
    assert_clean_failure(edgeq("compile", path, "-o", out), "--input-shape x=1x3xHxW")
    assert not out.exists()
    # the hint's form, with the open dims filled in (and the name left out: one input)
    ok = edgeq("compile", path, "-o", out, "--target", "reference", "--input-shape", "1,3,8,8", "-q")
    assert ok.returncode == 0, ok.stderr
    _same_as_ort(path, import_onnx(path, {"x": (1, 3, 8, 8)}))


def test_one_open_dim_is_named_in_the_singular():
    m = _hand_built("N")
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    with pytest.raises(EdgeqError, match=r"--input-shape x=1x3x8xW with W set to a number"):
        import_onnx(m)


def test_nameless_input_shape_needs_a_one_input_model():
    m = _hand_built("N")
    m.graph.input.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 4, 8, 8]))
    with pytest.raises(EdgeqError, match="model has 2 inputs"):
        import_onnx(m, {"": (1, 3, 8, 8)})


def test_unreadable_input_shape_is_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_hand_built("N"), path)
    assert_clean_failure(edgeq("compile", path, "-o", tmp_path / "o", "--input-shape", "x=1x3xHx8"),
                         "cannot read --input-shape")
