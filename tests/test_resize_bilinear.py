"""Bilinear Resize (issue 20): ONNX Resize mode=linear over H and W becomes ResizeBilinear
(float semantics: onnxruntime's positions), quantized to QResizeBilinear (TFLite's integer
rule: 10-bit positions and weights, docs/semantics.md). Checked: import against onnxruntime,
the C kernel against the reference, the TFLite export (RESIZE_BILINEAR) against LiteRT
BUILTIN_REF and TFLite Micro, the integer result against float bilinear, and a U-Net with a
bilinear decoder through `edgeq compile` with `edgeq run --check`."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.errors import EdgeqError
from edgeq.reference import run_node
from edgeq.reference.resize import bilinear_table
from edgeq.importer.load import import_onnx

from ._cli_check import compile_and_check
from . import _cbuild as cb
from ._ckernels import node, rand_i8
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort

MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
GEOMETRIES = [((6, 8), (11, 17)), ((6, 8), (4, 3)), ((6, 8), (12, 16)), ((5, 7), (9, 4)), ((1, 3), (4, 6))]


def _resize_model(in_hw, sizes=None, scales=None, **attrs):
    inits = {"roi": np.zeros(0, np.float32), "scales": np.array(scales or [], np.float32)}
    ins = ["x", "roi", "scales"]
    if sizes is not None:
        inits["sizes"] = np.array([1, 2] + list(sizes), np.int64)
        ins.append("sizes")
    n = helper.make_node("Resize", ins, ["y"], mode="linear", **attrs)
    return make_model([n], [("x", [1, 2, *in_hw])], [("y", None)], inits)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_hw,out_hw", GEOMETRIES)
def test_import_matches_onnxruntime(mode, in_hw, out_hw):
    m = _resize_model(in_hw, out_hw, coordinate_transformation_mode=mode)
    g = import_onnx(m)
    _canonical(g)
    assert g.ops() == ["ResizeBilinear"]
    _check_against_ort(m, g)


def test_import_with_scales_matches_onnxruntime():
    m = _resize_model((5, 6), scales=[1, 1, 1.5, 0.5], coordinate_transformation_mode="half_pixel")
    _check_against_ort(m, import_onnx(m))


@pytest.mark.parametrize("attrs,needle", [
    ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
    ({"antialias": 1}, "antialias"),
])
def test_refusals(attrs, needle):
    m = _resize_model((6, 8), (3, 4), **attrs)
    if "antialias" in attrs:
        m.opset_import[0].version = 18
    with pytest.raises(EdgeqError, match=needle):
        import_onnx(m)


def _qnode(in_hw, out_hw, mode):
    return node("QResizeBilinear", y_table=bilinear_table(in_hw[0], out_hw[0], mode),
                x_table=bilinear_table(in_hw[1], out_hw[1], mode), mode=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_hw,out_hw", GEOMETRIES)
def test_c_equals_reference(mode, in_hw, out_hw):
    rng = np.random.default_rng(sum(in_hw) + sum(out_hw))
    x = rand_i8(rng, (2, 3) + in_hw)
    n = _qnode(in_hw, out_hw, mode)
    want = run_node(n, [x])
    got = np.zeros((2, 3) + out_hw, np.int8)
    p = cb.make(cb.ResizeParams, batch=2, channels=3, in_h=in_hw[0], in_w=in_hw[1], out_h=out_hw[0], out_w=out_hw[1])
    st = cb.call("eq_resize_bilinear_s8", p, cb.i32(n.attrs["y_table"]), cb.i32(n.attrs["x_table"]), cb.i8(x), got)
    assert st == 0 and np.array_equal(got, want)


def test_c_rejects_a_table_outside_the_input():
    p = cb.make(cb.ResizeParams, batch=1, channels=1, in_h=2, in_w=2, out_h=1, out_w=1)
    x, y = np.zeros((1, 1, 2, 2), np.int8), np.zeros((1, 1, 1, 1), np.int8)
    assert cb.call("eq_resize_bilinear_s8", p, cb.i32([1, 2, 0]), cb.i32([0, 0, 0]), x, y) == 1  # hi = 2
    assert cb.call("eq_resize_bilinear_s8", p, cb.i32([0, 1, 1024]), cb.i32([0, 0, 0]), x, y) == 1  # frac


def test_integer_result_is_float_bilinear_within_a_step():
    """On a 2x upsampling (exact 10-bit positions) the integer result is the float result
    rounded: at most half a step off, plus nothing."""
    rng = np.random.default_rng(1)
    x = rand_i8(rng, (1, 4, 6, 7))
    n = _qnode((6, 7), (12, 14), "half_pixel")
    got = run_node(n, [x]).astype(np.float64)
    m = _resize_model((6, 7), (12, 14), coordinate_transformation_mode="half_pixel")
    from ._onnx_builders import ort_run
    want = np.concatenate([ort_run(m, {"x": x[:, 2 * k:2 * k + 2].astype(np.float32)})[0] for k in range(2)], 1)
    assert np.abs(got - want).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_hw,out_hw", GEOMETRIES[:4])
def test_exports_as_exact_resize_bilinear(mode, in_hw, out_hw):
    from .test_tflite_export import QB, assert_exact, op_codes
    b = QB(31)
    x = b.inp("x", (1, 3) + in_hw, 0.05, 7)
    c = b.conv(x, 4, (1, 1), 0.1, 2)
    n = _qnode(in_hw, out_hw, mode)
    y = b.same("QResizeBilinear", c, (1, 4) + out_hw, **n.attrs)
    data = assert_exact(b.done(y))
    assert "RESIZE_BILINEAR" in op_codes(data)


def test_export_refuses_tables_tflite_does_not_compute():
    from .test_tflite_export import QB
    from edgeq.export.tflite import export_tflite
    b = QB(32)
    x = b.inp("x", (1, 2, 4, 4), 0.05, 0)
    y = b.same("QResizeBilinear", x, (1, 2, 1, 4), y_table=[0, 1, 300], x_table=bilinear_table(4, 4, "half_pixel"))
    with pytest.raises(EdgeqError, match="RESIZE_BILINEAR"):
        export_tflite(b.done(y))


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_bilinear_unet_matches_onnxruntime(exporter):
    path, _ = exported("unet_bilinear", exporter)
    g = import_onnx(path)
    assert "ResizeBilinear" in g.ops()
    _check_against_ort(str(path), g)


@pytest.mark.parametrize("target", ["host", "tflite"])
def test_bilinear_unet_compiles_and_runs_bit_exact(target, tmp_path):
    path, shape = exported("unet_bilinear", "dynamo")
    compile_and_check(path, shape, target, tmp_path, seed=9)


def test_float_graph_file_round_trips_and_runs_in_onnxruntime(tmp_path):
    """model.float.onnx: ResizeBilinear is written as ONNX Resize (linear) and Gather with its
    indices input, onnxruntime computes the graph's function, and load_graph gives the graph back."""
    from edgeq.floatexec.executor import run_float
    from edgeq.graphio.onnx_io import graph_to_onnx, load_graph, save_graph
    from ._onnx_builders import ort_run
    path, shape = exported("unet_bilinear", "legacy")
    g = import_onnx(path)
    x = np.random.default_rng(12).normal(size=shape).astype(np.float32)
    want = run_float(g, {"x": x})["y"]
    np.testing.assert_allclose(ort_run(graph_to_onnx(g), {"x": x})[0], want, rtol=1e-4, atol=1e-5)
    save_graph(g, tmp_path / "f.onnx")
    back = load_graph(tmp_path / "f.onnx")
    assert back.ops() == g.ops() and [n.attrs for n in back.nodes] == [n.attrs for n in g.nodes]
