"""The graphs the DFQ passes produce still run bit-exact through every lowering.

The Fashion-MNIST MobileNetV2-style reference model is compiled by the real pipeline
(compile_model: import -> float passes -> calibrate -> quantize) with cross-layer
equalization, high-bias absorption and bias correction on, once with per-tensor and once
with per-channel weights (per-channel: unguarded, so the passes' rewrites are what gets
lowered even where passes/dfq_guard.py would have dropped them). The integer reference
(edgeq.reference) must then equal, byte for byte:

- the host C build (target "host"),
- the firmware on QEMU's Cortex-M7 board (target "cortex-m7"),
- the TFLite export in LiteRT (BUILTIN_REF kernels) and in TFLite Micro.

Harnesses are the existing ones: check_target (tests/test_codegen_host.py) for the C
targets, assert_exact / model_feeds (tests/test_tflite_export.py) for TFLite.
"""
from __future__ import annotations

import shutil
from functools import lru_cache

import numpy as np
import pytest

from edgeq.reference.interpreter import run_reference
from edgeq.targets import get_target

from .test_codegen_host import check_target
from .test_tflite_export import _float_inputs, assert_exact, model_feeds

GRANULARITIES = ["per-tensor", "per-channel"]
N_REAL = 8  # real (quantized) test images per lowering, besides check_target's random ones


@lru_cache(maxsize=None)
def _compiled(granularity: str):
    from edgeq.models.registry import REFERENCE_MODELS
    from edgeq.driver.pipeline import CompileOptions, compile_model
    path = REFERENCE_MODELS["mobilenetv2"]
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    calib = _float_inputs("fmnist", "mobilenetv2", "calib", 32)
    opts = CompileOptions(weight_granularity=granularity, equalize=True, bias_correction=True,
                          dfq_guard=False, progress=False, calib_limit=32)
    return compile_model(str(path), opts, None, calib=calib, log=lambda s: None)


def qgraph(granularity: str):
    res = _compiled(granularity)
    passes = {e["pass"] for e in res.report["passes"]}
    # the passes really ran (and changed weights): this is the graph they produced
    assert {"equalize_cross_layer", "correct_bias"} <= passes, passes
    assert any(e["pass"] == "correct_bias" and e.get("bias_shift_max", 0) > 0
               for e in res.report["passes"])
    return res.qgraph


def _check_real_inputs(target, g, build_dir):
    feeds = model_feeds("fmnist", "mobilenetv2", g, N_REAL)
    got = target.run(build_dir, feeds)
    want = run_reference(g, feeds)
    for name in g.outputs:
        assert np.array_equal(got[name], want[name]), name


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_dfq_graph_host_c_is_bit_exact(granularity, tmp_path):
    g = qgraph(granularity)
    target = get_target("host")
    check_target(target, g, tmp_path)
    _check_real_inputs(target, g, tmp_path)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_dfq_graph_tflite_litert_and_tflm_are_bit_exact(granularity):
    g = qgraph(granularity)
    assert_exact(g, model_feeds("fmnist", "mobilenetv2", g, N_REAL))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_dfq_graph_cortex_m7_qemu_is_bit_exact(granularity, tmp_path):
    g = qgraph(granularity)
    target = get_target("cortex-m7")
    check_target(target, g, tmp_path, n=2)
    _check_real_inputs(target, g, tmp_path)
