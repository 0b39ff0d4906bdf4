"""Selection and reduction ops (issue 20): Slice, Split, Gather with constant indices, Pad in
reflect / edge / wrap mode, nearest Resize (all become canonical Gather / QGather), and
ReduceMean / ReduceMax over any non-batch axes (pools).

Import is checked against onnxruntime on hand-built graphs for every attribute form; QGather's
C kernel against the integer reference (ctypes; the per-op graphs of test_codegen_host also run
it on the host and on every QEMU board); its TFLite export (GATHER) against LiteRT BUILTIN_REF
and TFLite Micro; a torch model with all of them through `edgeq compile --target host` and
`edgeq run --check`.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeq.errors import EdgeqError
from edgeq.reference import run_node
from edgeq.importer.load import import_onnx

from . import _cbuild as cb
from ._ckernels import node, rand_i8
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort

I64_MAX = np.iinfo(np.int64).max


def _one_node(op, x_shape, y_shape, inits=(), opset=13, extra_inputs=(), outputs=("y",), **attrs):
    names = ["x"] + list(extra_inputs)
    n = helper.make_node(op, names, list(outputs), **attrs)
    outs = [(o, None) for o in outputs]
    m = make_model([n], [("x", list(x_shape))], outs, inits, opset=opset)
    return m


def _same_as_ort(model, ops=None):
    g = import_onnx(model)
    _canonical(g)
    if ops is not None:
        assert set(g.ops()) <= set(ops), g.ops()
    _check_against_ort(model, g)
    return g


# ---- import vs onnxruntime -------------------------------------------------------------------

@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                   "tf_half_pixel_for_nn"])
@pytest.mark.parametrize("rule", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest_sizes_match_onnxruntime(coord, rule):
    """Upsampling W 9 -> 20, downsampling H 10 -> 7, given as sizes."""
    m = _one_node("Resize", (1, 2, 10, 9), None, {"roi": np.zeros(0, np.float32),
                                                  "scales": np.zeros(0, np.float32),
                                                  "sizes": np.array([1, 2, 7, 20], np.int64)},
                  extra_inputs=("roi", "scales", "sizes"), mode="nearest",
                  coordinate_transformation_mode=coord, nearest_mode=rule)
    _same_as_ort(m, {"Gather"})


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 1.5, 0.5), (1, 1, 3, 1)])
def test_resize_nearest_scales_match_onnxruntime(scales):
    m = _one_node("Resize", (1, 3, 6, 8), None, {"roi": np.zeros(0, np.float32),
                                                 "scales": np.array(scales, np.float32)},
                  extra_inputs=("roi", "scales"), mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    _same_as_ort(m, {"Gather"})


@pytest.mark.parametrize("mode,pads,opset", [
    ("reflect", [0, 0, 2, 1, 0, 0, 1, 3], 13),
    ("edge", [0, 1, 3, 0, 0, 2, 0, 4], 13),
    ("edge", [0, 0, -1, 2, 0, 0, 2, -3], 13),   # a negative pad crops
    ("wrap", [0, 0, 2, 5, 0, 0, 1, 7], 19),
])
def test_pad_modes_match_onnxruntime(mode, pads, opset):
    m = _one_node("Pad", (1, 3, 5, 6), None, {"pads": np.array(pads, np.int64)}, opset=opset,
                  extra_inputs=("pads",), mode=mode)
    _same_as_ort(m, {"Gather"})


def test_slice_forms_match_onnxruntime():
    """Negative axes and steps, INT64 sentinels, a slice of all of an axis (no node)."""
    m = _one_node("Slice", (1, 4, 7, 9), None, {
        "starts": np.array([-1, 1, 0], np.int64), "ends": np.array([-I64_MAX, I64_MAX, I64_MAX], np.int64),
        "axes": np.array([-1, 2, 1], np.int64), "steps": np.array([-2, 3, 1], np.int64)},
        extra_inputs=("starts", "ends", "axes", "steps"))
    g = _same_as_ort(m, {"Gather"})
    assert [n.attrs["axis"] for n in g.nodes] == [2, 3]  # axis 1 is whole: no Gather for it


@pytest.mark.parametrize("opset,split,attrs,parts", [
    (13, [1, 4, 2], {}, 3),
    (13, None, {}, 2),                      # equal halves
    (18, None, {"num_outputs": 3}, 3),      # 7 -> 3, 3, 1
])
def test_split_matches_onnxruntime(opset, split, attrs, parts):
    outs = tuple(f"y{k}" for k in range(parts))
    shape = (1, 6 if split is None and not attrs else 7, 4)
    inits = {} if split is None else {"split": np.array(split, np.int64)}
    m = _one_node("Split", shape, None, inits, opset=opset, outputs=outs,
                  extra_inputs=() if split is None else ("split",), axis=1, **attrs)
    g = _same_as_ort(m, {"Gather"})
    assert len(g.outputs) == parts


@pytest.mark.parametrize("indices,axis", [
    (np.array([[2, -1], [0, 0]], np.int64), 2),  # 2-D and negative indices
    (np.array(3, np.int64), 1),                    # a scalar index drops the axis
    (np.array([4, 0, 1], np.int64), -1),
])
def test_gather_constant_indices_match_onnxruntime(indices, axis):
    m = _one_node("Gather", (1, 5, 6, 5), None, {"i": indices}, extra_inputs=("i",), axis=axis)
    _same_as_ort(m, {"Gather", "Reshape"})


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("shape,axes,keep", [
    ((1, 6, 5, 4), [1], 1),        # over channels: a Transpose brings them last
    ((1, 6, 5, 4), [1, 3], 0),
    ((1, 6, 5, 4), [2, 3], 1),     # the global pool itself
    ((1, 6, 5, 4), [-1], 0),
    ((1, 7, 9), [1], 1),
    ((1, 6, 5, 4), None, 1),       # all axes but... axis 0 included: refused below
])
def test_reduce_mean_max_any_axes_match_onnxruntime(op, shape, axes, keep):
    inits = {} if axes is None else {"axes": np.array(axes, np.int64)}
    m = _one_node(op, shape, None, inits, opset=18, extra_inputs=() if axes is None else ("axes",),
                  keepdims=keep)
    if axes is None:
        with pytest.raises(EdgeqError, match="batch axis"):
            import_onnx(m)
        return
    _same_as_ort(m)


def test_torch_select_net_both_exporters_match_onnxruntime():
    for exporter in ("legacy", "dynamo"):
        path, _ = exported("select", exporter)
        g = import_onnx(path)
        assert {"Gather", "MaxPool", "GlobalAveragePool", "Mul"} <= set(g.ops())
        _check_against_ort(str(path), g)


@pytest.mark.parametrize("op,kw,inits,ins,needle", [
    ("Gather", {"axis": 0}, {"i": np.array([0, 0], np.int64)}, ("i",), "batch axis"),
    ("Pad", {"mode": "reflect"}, {"p": np.array([0, 0, 0, 6, 0, 0, 0, 0], np.int64)}, ("p",), "reflect padding"),
    ("Resize", {"mode": "cubic"}, {"r": np.zeros(0, np.float32), "s": np.array([1, 1, 2, 2], np.float32)},
     ("r", "s"), "mode='cubic'"),
])
def test_refusals_name_the_node(op, kw, inits, ins, needle):
    m = _one_node(op, (1, 2, 5, 6), None, inits, extra_inputs=ins, **kw)
    with pytest.raises(EdgeqError, match=needle) as e:
        import_onnx(m)
    assert op in str(e.value)


# ---- QGather: reference vs C --------------------------------------------------------------------

def _c_gather(x, axis, idx):
    shape = x.shape
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    y = np.zeros(shape[:axis] + (len(idx),) + shape[axis + 1:], np.int8)
    p = cb.make(cb.GatherParams, outer=outer, in_len=shape[axis], out_len=len(idx), inner=inner)
    st = cb.call("eq_gather_s8", p, cb.i32(idx), cb.i8(x), y)
    return st, y


def test_qgather_c_equals_reference():
    rng = np.random.default_rng(3)
    for case in range(40):
        rank = int(rng.integers(1, 6))
        shape = tuple(int(d) for d in rng.integers(1, 6, size=rank))
        axis = int(rng.integers(0, rank))
        idx = rng.integers(0, shape[axis], size=int(rng.integers(1, 9))).tolist()
        x = rand_i8(rng, shape)
        want = run_node(node("QGather", axis=axis, indices=idx), [x])
        st, got = _c_gather(x, axis, idx)
        assert st == 0 and np.array_equal(got, want), (case, shape, axis, idx)


@pytest.mark.parametrize("idx", [[0, 3], [-1]])
def test_qgather_c_rejects_indices_outside_the_axis(idx):
    st, _ = _c_gather(np.zeros((1, 2, 3), np.int8), 1, idx)
    assert st == 1  # EQ_ERR_ARG
    with pytest.raises(ValueError, match="indices"):
        run_node(node("QGather", axis=1, indices=idx), [np.zeros((1, 2, 3), np.int8)])


# ---- TFLite: GATHER ------------------------------------------------------------------------------

def test_qgather_exports_as_exact_gather():
    from .test_tflite_export import QB, assert_exact, op_codes
    b = QB(21)
    x = b.inp("x", (1, 3, 6, 5), 0.05, 4)
    c = b.conv(x, 4, (1, 1), 0.1, 2)                          # an NHWC feature map
    w = b.same("QGather", c, (1, 4, 6, 7), axis=3, indices=[1, 0, 1, 2, 3, 4, 3])
    h = b.same("QGather", w, (1, 4, 2, 7), axis=2, indices=[5, 0])
    ch = b.same("QGather", c, (1, 2, 6, 5), axis=1, indices=[3, 3])
    r = b.reshape(c, (1, 4, 30))
    r3 = b.same("QGather", r, (1, 4, 3), axis=2, indices=[29, 0, 7])
    data = assert_exact(b.done(h, ch, r3))
    assert op_codes(data).count("GATHER") == 4


# ---- end to end ------------------------------------------------------------------------------------

def test_select_net_compiles_for_host_and_runs_bit_exact(tmp_path):
    from .test_cli_usage import edgeq_cli
    path, shape = exported("select", "dynamo")
    out = tmp_path / "host"
    proc = edgeq_cli("compile", path, "-t", "host", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(4).normal(size=(3,) + shape[1:]).astype(np.float32))
    run = edgeq_cli("run", out, "--input", x, "--check")
    assert run.returncode == 0 and "bit-identical" in run.stdout + run.stderr, run.stdout + run.stderr
