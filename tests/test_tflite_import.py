"""`edgeq compile model.tflite`: an int8 TFLite model imported as it is runs bit for bit
like TFLite Micro (the oracle: the `tflite-micro` package's interpreter, reference
kernels) on every target.

The official MLPerf Tiny int8 models are the test set, on their real or realistic inputs
(edgeq.models.mlperf_inputs, quantized with the file's own input parameters): kws01 and
ad01 by default, every model on every target in the slow run. One-op models check what
those models cannot: the per-tensor FULLY_CONNECTED multiplier (float32 product), the ops
they do not use (MAX_POOL_2D, PAD, MUL, CONCATENATION, HARD_SWISH), and the refusals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import EdgeqError
from edgeq.reference.interpreter import run_reference
from edgeq.options import CompileOptions
from edgeq.targets import get_target
from edgeq.driver.pipeline import compile_model
from edgeq.tflite_import import import_tflite

from .conftest import MLPERF

tflm = pytest.importorskip("tflite_micro")
from edgeq.export.tflite_run import run_tflm  # noqa: E402

from ._tflite_oracle import S, T, op_model  # noqa: E402

TARGETS = ["reference", "host", "cortex-m7", "tflite"]
DEFAULT_MODELS = ["kws01", "ad01"]
ALL_MODELS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]


def official(name: str) -> Path:
    path = MLPERF / name / "reference_int8.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def sample_inputs(name: str, qgraph) -> np.ndarray:
    """Real / realistic samples in the model's input layout, quantized with its parameters,
    plus the int8 samples upstream's reference firmware embeds."""
    from edgeq.models.mlperf_inputs import mlperf_inputs
    t = qgraph.tensors[qgraph.inputs[0]]
    x = [t.q.quantize(mlperf_inputs(name, "all", 24).reshape((-1,) + t.shape[1:]))]
    if name == "kws01":
        x.append(np.load(MLPERF / name / "test_data" / "kws_sample.npz")["input_int8"].reshape((-1,) + t.shape[1:]))
    if name == "sww01":
        fixed = np.load(MLPERF / name / "test_data" / "fixed_test_inputs_int8.npz")
        x += [fixed[k].reshape((-1,) + t.shape[1:]) for k in fixed.files]
    return np.concatenate(x).astype(np.int8)


def check_model_on_target(name: str, target: str, tmp_path: Path) -> None:
    path = official(name)
    result = compile_model(path, CompileOptions(target=target, progress=False), tmp_path / "build")
    g = result.qgraph
    x = sample_inputs(name, g)
    got = get_target(target).run(tmp_path / "build", {g.inputs[0]: x})[g.outputs[0]]
    want = run_tflm(path, {"x": x})
    want = next(iter(want.values()))
    assert got.shape == want.shape and got.dtype == want.dtype == np.int8
    assert np.array_equal(got, want), f"{name} on {target}: {int(np.sum(got != want))} outputs differ from TFLite Micro"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", DEFAULT_MODELS)
def test_official_int8_model_matches_tflite_micro(name, target, tmp_path):
    if target == "cortex-m7" and name == "ad01":
        pytest.skip("ad01 on QEMU runs in the slow set (the kws01 one covers the board)")
    check_model_on_target(name, target, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_official_int8_model_matches_tflite_micro(name, target, tmp_path):
    check_model_on_target(name, target, tmp_path)


def test_import_keeps_the_files_parameters():
    """Scales, zero points and per-channel weights are the file's, untouched."""
    from edgeq.tflite_import.reader import read_tflite
    path = official("kws01")
    m, g = read_tflite(path), import_tflite(path)
    first_conv = next(op for op in m.ops if op.builtin == "CONV_2D")
    w_file = m.tensors[first_conv.inputs[1]]
    node = next(n for n in g.nodes if n.op == "QConv")
    w = g.tensors[node.inputs[1]]
    assert np.array_equal(w.data, np.transpose(w_file.data, (0, 3, 1, 2)))
    assert np.array_equal(w.q.scale, w_file.scale) and w.q.axis == 0
    t_in = m.tensors[m.inputs[0]]
    q_in = g.tensors[g.inputs[0]].q
    assert g.tensors[g.inputs[0]].shape == t_in.shape  # the user's arrays are TFLite's
    assert (float(q_in.scale), int(q_in.zero_point)) == (float(t_in.scale[0]), int(t_in.zero_point[0]))


# ---- one-op models ------------------------------------------------------------------

def _one_op(tmp_path: Path, opcode, inputs, output, options_type=0, options=None) -> Path:
    path = tmp_path / "op.tflite"
    path.write_bytes(op_model(opcode, inputs, output, options_type, options))
    return path


def _fc_model(tmp_path: Path, s_in, s_w, s_out, bias: np.ndarray) -> Path:
    co = len(bias)
    opts = S.FullyConnectedOptionsT()
    return _one_op(tmp_path, S.BuiltinOperator.FULLY_CONNECTED,
                   [T((1, 1), scale=s_in), T((co, 1), scale=s_w, data=np.ones((co, 1), np.int8)),
                    T((co,), np.int32, scale=float(np.float32(s_in) * np.float32(s_w)), data=bias)],
                   T((1, co), scale=s_out), S.BuiltinOptions.FullyConnectedOptions, opts)


def test_fully_connected_multiplier_is_the_double_product(tmp_path):
    """TFLite's GetQuantizedConvolutionMultipler takes s_in * s_w in float32 before dividing
    in double; TFLite Micro's FULLY_CONNECTED takes the whole product in double (as edgeq's
    quantizer). With x = x_zp and weights 1 each output is clamp(MBQM(bias[c])): biases
    where the two multipliers round differently tell which one TFLite Micro uses."""
    from edgeq.fixedpoint import multiply_by_quantized_multiplier as mbqm
    from edgeq.fixedpoint import quantize_multiplier
    from edgeq.quantization.rules.multipliers import conv_multipliers

    def fc_multiplier(s_in, s_w, s_out):
        return quantize_multiplier(float(np.float32(s_in) * np.float32(s_w)) / s_out)
    rng = np.random.default_rng(7)
    for _ in range(10000):  # a small multiplier (~1e-5) whose two derivations differ most
        s_in, s_w, s_out = (float(np.float32(v)) for v in
                            (rng.uniform(1e-3, 1e-2), rng.uniform(1e-4, 1e-3), rng.uniform(0.05, 0.5)))
        m_f, sh_f = fc_multiplier(s_in, s_w, s_out)
        m_d, sh_d = (int(v[0]) for v in conv_multipliers(s_in, [s_w], s_out, 1))
        if sh_f == sh_d and abs(m_f - m_d) >= 20:
            break
    # accumulators around every rounding boundary of an output in [-119, 119]
    real = m_d * 2.0 ** (sh_d - 31)
    centers = np.round((np.arange(-119, 120) + 0.5) / real).astype(np.int64)
    acc = (centers[:, None] + np.arange(-64, 65)).ravel()
    y_f, y_d = mbqm(acc, m_f, sh_f), mbqm(acc, m_d, sh_d)
    differ = acc[(y_f != y_d) & (np.abs(y_f) < 120)]
    assert differ.size >= 8, "no accumulator separates the two multipliers"
    bias = differ[:: max(1, differ.size // 16)][:16].astype(np.int32)
    path = _fc_model(tmp_path, s_in, s_w, s_out, bias)
    x = np.zeros((1, 1), np.int8)
    want = next(iter(run_tflm(path, {"x": x}).values()))
    g = import_tflite(path)
    got = run_reference(g, {g.inputs[0]: x})[g.outputs[0]]
    assert np.array_equal(got, want)
    assert not np.array_equal(np.clip(mbqm(bias.astype(np.int64), m_f, sh_f), -128, 127), want.reshape(-1))
    compile_model(path, CompileOptions(target="tflite", progress=False), tmp_path / "b")
    out = get_target("tflite").run(tmp_path / "b", {g.inputs[0]: x})[g.outputs[0]]
    assert np.array_equal(out, want)


def _pool_options(k, s, same, fused=0):
    o = S.Pool2DOptionsT()
    o.padding = 0 if same else 1
    o.strideH = o.strideW = s
    o.filterHeight = o.filterWidth = k
    o.fusedActivationFunction = fused
    return o


@pytest.mark.parametrize("same", [True, False])
def test_max_pool_with_padding_and_fused_relu6(tmp_path, same):
    x_shape = (1, 7, 6, 5)
    out_hw = (4, 3) if same else (3, 2)
    path = _one_op(tmp_path, S.BuiltinOperator.MAX_POOL_2D, [T(x_shape, scale=0.05, zero_point=-20)],
                   T((1, *out_hw, 5), scale=0.05, zero_point=-20), S.BuiltinOptions.Pool2DOptions,
                   _pool_options(3, 2, same, fused=3))
    _check_one_op(path, x_shape)


def _check_one_op(path: Path, x_shape, n: int = 6) -> None:
    x = np.random.default_rng(0).integers(-128, 128, (n,) + tuple(x_shape[1:])).astype(np.int8)
    want = next(iter(run_tflm(path, {"x": x}).values()))
    g = import_tflite(path)
    got = run_reference(g, {g.inputs[0]: x})[g.outputs[0]]
    assert np.array_equal(got, want)


def test_depthwise_conv_with_multiplier_and_same_padding(tmp_path):
    rng = np.random.default_rng(1)
    ci, mult = 3, 2
    co = ci * mult
    w = rng.integers(-127, 128, (1, 3, 3, co)).astype(np.int8)
    ws = rng.uniform(0.002, 0.02, co).astype(np.float32)
    b = rng.integers(-2000, 2000, co).astype(np.int32)
    o = S.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.depthMultiplier = 0, 2, 2, mult
    o.dilationHFactor = o.dilationWFactor = 1
    o.fusedActivationFunction = 1
    path = _one_op(tmp_path, S.BuiltinOperator.DEPTHWISE_CONV_2D,
                   [T((1, 9, 8, ci), scale=0.07, zero_point=5), T(w.shape, scale=list(ws), data=w, qdim=3),
                    T((co,), np.int32, scale=list(ws * np.float32(0.07)), data=b)],
                   T((1, 5, 4, co), scale=0.04, zero_point=-100), S.BuiltinOptions.DepthwiseConv2DOptions, o)
    _check_one_op(path, (1, 9, 8, ci))


def test_mul_with_broadcast_constant(tmp_path):
    c = np.arange(-3, 3, dtype=np.int8).reshape(1, 1, 1, 6) * 20
    path = _one_op(tmp_path, S.BuiltinOperator.MUL,
                   [T((1, 4, 4, 6), scale=0.03, zero_point=10), T((1, 1, 1, 6), scale=0.01, zero_point=0, data=c)],
                   T((1, 4, 4, 6), scale=0.02, zero_point=-3), S.BuiltinOptions.MulOptions, S.MulOptionsT())
    _check_one_op(path, (1, 4, 4, 6))


def test_pad_in_nchw_keeps_tflite_axes(tmp_path):
    pads = np.array([[0, 0], [1, 2], [0, 3], [0, 0]], np.int32)
    path = _one_op(tmp_path, S.BuiltinOperator.PAD,
                   [T((1, 3, 4, 5), scale=0.1, zero_point=7), T((4, 2), np.int32, data=pads)],
                   T((1, 6, 7, 5), scale=0.1, zero_point=7), S.BuiltinOptions.PadOptions, S.PadOptionsT())
    _check_one_op(path, (1, 3, 4, 5))


def test_concatenation_on_channels(tmp_path):
    o = S.ConcatenationOptionsT()
    o.axis = 3
    q = dict(scale=0.1, zero_point=7)
    path = tmp_path / "cat.tflite"
    path.write_bytes(op_model(S.BuiltinOperator.CONCATENATION, [T((1, 3, 4, 2), **q), T((1, 3, 4, 5), **q)],
                              T((1, 3, 4, 7), **q), S.BuiltinOptions.ConcatenationOptions, o))
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (3, 3, 4, 2)).astype(np.int8)
    b = rng.integers(-128, 128, (3, 3, 4, 5)).astype(np.int8)
    g = import_tflite(path)
    want = next(iter(run_tflm(path, dict(zip(g.inputs, (a, b)))).values()))
    got = run_reference(g, dict(zip(g.inputs, (a, b))))[g.outputs[0]]
    assert np.array_equal(got, want)


def test_hard_swish_is_tflites_kernel(tmp_path):
    path = _one_op(tmp_path, S.BuiltinOperator.HARD_SWISH, [T((1, 256), scale=0.03, zero_point=-10)],
                   T((1, 256), scale=0.02, zero_point=-60))
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    want = next(iter(run_tflm(path, {"x": x}).values()))
    g = import_tflite(path)
    assert np.array_equal(run_reference(g, {g.inputs[0]: x})[g.outputs[0]], want)


# ---- refusals ---------------------------------------------------------------------------

def test_unsupported_builtins_are_named_in_one_line(tmp_path):
    path = _one_op(tmp_path, S.BuiltinOperator.LOGISTIC, [T((1, 8), scale=0.1)], T((1, 8), scale=1 / 256, zero_point=-128))
    with pytest.raises(EdgeqError) as e:
        import_tflite(path)
    assert "LOGISTIC (operator 0)" in str(e.value) and "\n" not in str(e.value)


def test_float_model_is_refused(tmp_path):
    path = _one_op(tmp_path, S.BuiltinOperator.MAX_POOL_2D, [T((1, 4, 4, 1), np.float32)],
                   T((1, 2, 2, 1), np.float32), S.BuiltinOptions.Pool2DOptions, _pool_options(2, 2, False))
    with pytest.raises(EdgeqError, match="not int8"):
        import_tflite(path)


def test_not_a_tflite_file_is_refused(tmp_path):
    from edgeq.tflite_import.reader import read_tflite
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(EdgeqError, match="not a .tflite flatbuffer"):
        read_tflite(path)
    path.write_bytes(official("kws01").read_bytes()[:2000])  # truncated
    with pytest.raises(EdgeqError, match="cannot read"):
        read_tflite(path)


def test_quantizer_options_are_refused_for_a_quantized_model(tmp_path):
    path = official("kws01")
    with pytest.raises(EdgeqError, match="--weight-bits"):
        compile_model(path, CompileOptions(target="reference", weight_bits=4, progress=False), tmp_path / "b")
    calib = tmp_path / "c.npy"
    np.save(calib, np.zeros((2, 49, 10, 1), np.float32))
    with pytest.raises(EdgeqError, match="--calib"):
        compile_model(path, CompileOptions(target="reference", progress=False), tmp_path / "b", calib)
    assert not (tmp_path / "b").exists()


def test_cli_compiles_and_runs_a_tflite_model(tmp_path):
    """The one-command switch: compile the .tflite for host, run the user's int8 array."""
    from edgeq.cli import main
    path = official("kws01")
    x = np.load(MLPERF / "kws01" / "test_data" / "kws_sample.npz")["input_int8"]
    np.save(tmp_path / "x.npy", x)
    main(["compile", str(path), "-t", "host", "-o", str(tmp_path / "b"), "-q"])
    main(["run", str(tmp_path / "b"), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--raw", "--check"])
    want = next(iter(run_tflm(path, {"x": x.reshape(1, 49, 10, 1)}).values()))
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)
