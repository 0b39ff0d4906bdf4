"""End-to-end accuracy of the integer reference on real models and real data.

Fashion-MNIST reference models (models/fmnist_*.onnx, when trained): int8 with per-channel
weights, calibrated on the first 512 training images, must stay within 0.5 points of
float top-1 on the 10k test set (slow) — and within 1 point on the first 1k test images
(the fast check: 1 point is 10 images there). Float is onnxruntime on the ONNX file, an
oracle independent of edgeq's own float executor.

MLPerf Tiny models (../shared): they quantize, run through run_reference, and their int8
outputs track float (SQNR and top-1 agreement on realistic inputs).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import mlperf_model

FMNIST_NAMES = ("dscnn", "mobilenetv2", "resnet8")
CALIB_IMAGES = 512


def _fmnist():
    from edgeq.models import fmnist
    if not fmnist.available():
        pytest.skip("Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")
    return fmnist


def _model(name: str):
    from edgeq.models.registry import REFERENCE_MODELS
    path = REFERENCE_MODELS[name]
    if not path.is_file():
        pytest.skip(f"{path.name} is not trained yet")
    return path


def onnx_float(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def int8_outputs(qgraph, x: np.ndarray, batch: int = 500) -> np.ndarray:
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    name, out = qgraph.inputs[0], qgraph.outputs[0]
    ys = [dequantize_outputs(qgraph, run_reference(qgraph, quantize_inputs(qgraph, {name: x[i:i + batch]})))[out]
          for i in range(0, len(x), batch)]
    return np.concatenate(ys)


def fmnist_gap(name: str, n_test: int, granularity: str = "per-channel") -> tuple[float, float]:
    """(float top-1 %, int8 top-1 %) on the first n_test test images."""
    import edgeq
    fm = _fmnist()
    path = _model(name)
    train_x, _ = fm.load_fmnist("train")
    test_x, test_y = fm.load_fmnist("test")
    x, y = fm.preprocess(test_x[:n_test]), test_y[:n_test]
    q = edgeq.compile(path, target="reference", calib=fm.preprocess(train_x[:CALIB_IMAGES]),
                      weight_granularity=granularity, progress=False).qgraph
    f_acc = float(np.mean(onnx_float(path, x).argmax(1) == y)) * 100
    q_acc = float(np.mean(int8_outputs(q, x).argmax(1) == y)) * 100
    print(f"{name} {granularity}: float {f_acc:.2f}% int8 {q_acc:.2f}% ({q_acc - f_acc:+.2f}) on {n_test}")
    return f_acc, q_acc


@pytest.mark.parametrize("name", FMNIST_NAMES)
def test_fmnist_int8_close_to_float_fast(name):
    f_acc, q_acc = fmnist_gap(name, 1000)
    assert q_acc >= f_acc - 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", FMNIST_NAMES)
def test_fmnist_int8_within_half_a_point_on_10k(name):
    f_acc, q_acc = fmnist_gap(name, 10000)
    assert q_acc >= f_acc - 0.5


# (model, min SQNR dB of the output vs float, classifier?) on 16 eval inputs, 64 calib inputs.
# Measured (percentile calibration): kws01 ~29, ic01 ~23, ad01 ~42, vww01 ~37, sww01 ~37,
# ic01_large ~17 dB; thresholds leave margin. The big image models are slow-marked.
MLPERF = [("kws01", 20, True), ("ad01", 35, False), ("sww01", 28, True),
          pytest.param("ic01", 17, True, marks=pytest.mark.slow),
          pytest.param("vww01", 25, True, marks=pytest.mark.slow),
          pytest.param("ic01_large", 13, True, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,min_db,classifier", MLPERF)
def test_mlperf_int8_tracks_float(name, min_db, classifier):
    import edgeq
    from edgeq.floatexec.executor import run_float
    from edgeq.models.mlperf_inputs import mlperf_inputs
    path = mlperf_model(name)
    calib, x = mlperf_inputs(name, "calib", n=64), mlperf_inputs(name, "eval", n=16)
    res = edgeq.compile(path, target="reference", calib=calib, progress=False)
    g, q = res.float_graph, res.qgraph
    yf = run_float(g, {g.inputs[0]: x})[g.outputs[0]]
    yq = int8_outputs(q, x, batch=16)
    db = 10 * np.log10(np.sum(yf.astype(np.float64) ** 2) / np.sum((yf - yq).astype(np.float64) ** 2))
    assert db >= min_db, f"{name}: SQNR {db:.1f} dB"
    if classifier:
        agree = np.mean(yf.reshape(len(x), -1).argmax(1) == yq.reshape(len(x), -1).argmax(1))
        assert agree >= 0.8, f"{name}: top-1 agreement {agree:.2f}"
