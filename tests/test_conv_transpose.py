"""ConvTranspose (issue 20): imported as a constant Pad (one zero per spatial axis), a Gather
per spatial axis (zero insertion, border crop) and a stride-1 Conv with the flipped,
channel-swapped kernel, so every stage runs it with kernels it already has. Checked against
onnxruntime for every attribute form, and a tiny U-Net through `edgeq compile` with
`edgeq run --check`."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.importer.load import import_onnx

from ._cli_check import compile_and_check
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort


@pytest.mark.parametrize("shape,wshape,attrs", [
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ((1, 4, 5, 6), (4, 3, 2, 2), {"strides": [2, 2]}),
    ((1, 4, 5, 6), (4, 2, 3, 2), {"strides": [3, 2], "pads": [0, 1, 2, 0], "dilations": [2, 1]}),
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "group": 2, "pads": [1, 1, 1, 1]}),
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [1, 1], "pads": [1, 1, 1, 1]}),   # no Gather at all
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "pads": [3, 2, 3, 3]}),   # pads beyond the kernel crop
    ((1, 4, 5, 6), (4, 3, 4, 4), {"strides": [2, 2], "output_shape": [10, 11]}),
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 4, 7), (4, 3, 3), {"strides": [2], "pads": [1, 0]}),                  # 1-D
])
def test_conv_transpose_matches_onnxruntime(shape, wshape, attrs):
    rng = np.random.default_rng(len(str(attrs)))
    g = attrs.get("group", 1)
    W = rng.standard_normal(wshape).astype(np.float32)
    B = rng.standard_normal(wshape[1] * g).astype(np.float32)
    m = make_model([helper.make_node("ConvTranspose", ["x", "W", "B"], ["y"], **attrs)],
                   [("x", list(shape))], [("y", None)], {"W": W, "B": B})
    gr = import_onnx(m)
    _canonical(gr)
    assert "Conv" in gr.ops() and set(gr.ops()) <= {"Conv", "Pad", "Gather", "Reshape"}
    _check_against_ort(m, gr)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_tiny_unet_matches_onnxruntime(exporter):
    path, _ = exported("unet", exporter)
    g = import_onnx(path)
    _canonical(g)
    _check_against_ort(str(path), g)


@pytest.mark.parametrize("target", ["host", "tflite"])
def test_tiny_unet_compiles_and_runs_bit_exact(target, tmp_path):
    path, shape = exported("unet", "legacy")
    compile_and_check(path, shape, target, tmp_path, seed=8)
