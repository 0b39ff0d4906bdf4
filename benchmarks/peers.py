"""The peers edgeq is measured against, run the same way on the same inputs.

- float: onnxruntime on the float ONNX model (the reference for fidelity);
- onnxruntime `quantize_static` (QDQ, int8 activations and per-channel int8 weights,
  after `quant_pre_process`), calibrated on the same data as edgeq;
- an official int8 TFLite model run by LiteRT with the reference kernels (BUILTIN_REF,
  bit-identical to TFLite Micro), input quantized and output dequantized with its params.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def run_onnx(path: Path, x: np.ndarray, input_name: str | None = None) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = input_name or sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def ort_quantize_static(model: Path, calib: np.ndarray, per_channel: bool = True) -> Path:
    """onnxruntime's PTQ baseline: pre-process (BN folding, shape inference), then QDQ."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx
    name = onnx.load(str(model)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.items, None)

    work = Path(tempfile.mkdtemp(prefix="edgeq-ort-"))
    pre = work / "pre.onnx"
    quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
    out = work / "qdq.onnx"
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel)
    return out


def run_tflite_int8(path: Path, x: np.ndarray) -> np.ndarray:
    """Official int8 TFLite model with LiteRT's reference kernels; float in, float out."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    ys = []
    for i in range(len(x)):
        q = np.clip(np.round(x[i:i + 1] / s_in) + z_in, -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], q.reshape(inp["shape"]))
        interp.invoke()
        ys.append((interp.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out)
    return np.concatenate(ys)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    ref = reference.astype(np.float64).ravel()
    noise = ref - test.astype(np.float64).ravel()
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum(noise ** 2), 1e-30)))


def top1_agreement(reference: np.ndarray, test: np.ndarray) -> float:
    return float(np.mean(np.argmax(reference, axis=-1) == np.argmax(test, axis=-1)))
