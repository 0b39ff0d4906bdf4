"""One-op int8 TFLite models built in memory and run by LiteRT's reference kernels
(OpResolverType.BUILTIN_REF, bit-identical to TFLite Micro): an independent oracle for the
integer reference. Tests only; skipped when ai_edge_litert is absent."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter")
from ai_edge_litert import schema_py_generated as S  # noqa: E402
import flatbuffers  # noqa: E402

_TYPES = {np.dtype(np.int8): S.TensorType.INT8, np.dtype(np.int32): S.TensorType.INT32,
          np.dtype(np.float32): S.TensorType.FLOAT32}


@dataclass
class T:
    """A tensor of the model: shape, dtype, quantization, and data if it is a constant."""
    shape: tuple
    dtype: type = np.int8
    scale: float | list | None = None
    zero_point: int | list = 0
    data: np.ndarray | None = None
    qdim: int = 0


def _tensor(t: T, idx: int, buffers: list) -> S.TensorT:
    tt = S.TensorT()
    tt.shape = list(int(d) for d in t.shape)
    tt.type = _TYPES[np.dtype(t.dtype)]
    tt.name = f"t{idx}"
    buf = S.BufferT()
    if t.data is not None:
        buf.data = np.ascontiguousarray(t.data, dtype=t.dtype).tobytes()
    buffers.append(buf)
    tt.buffer = len(buffers) - 1
    if t.scale is not None:
        q = S.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(t.scale)]
        q.zeroPoint = [int(z) for z in np.atleast_1d(t.zero_point)]
        if len(q.zeroPoint) == 1 and len(q.scale) > 1:
            q.zeroPoint = q.zeroPoint * len(q.scale)
        q.quantizedDimension = t.qdim
        tt.quantization = q
    return tt


def op_model(opcode: int, inputs: list[T], output: T, options_type: int = 0, options=None) -> bytes:
    """The .tflite bytes of model(inputs -> op -> output); non-constant inputs are its inputs."""
    buffers = [S.BufferT()]  # buffer 0 is the empty sentinel
    tensors = [_tensor(t, i, buffers) for i, t in enumerate(inputs + [output])]
    op = S.OperatorT()
    op.opcodeIndex = 0
    op.inputs = list(range(len(inputs)))
    op.outputs = [len(inputs)]
    if options is not None:
        op.builtinOptionsType = options_type
        op.builtinOptions = options
    code = S.OperatorCodeT()
    code.builtinCode = opcode
    code.deprecatedBuiltinCode = min(opcode, 127)
    code.version = 1
    sg = S.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [i for i, t in enumerate(inputs) if t.data is None]
    sg.outputs = [len(inputs)]
    sg.operators = [op]
    model = S.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [sg]
    model.buffers = buffers
    model.description = "edgeq oracle"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_op(opcode: int, inputs: list[T], output: T, options_type: int = 0, options=None,
           feeds: list[np.ndarray] | None = None) -> np.ndarray:
    """Build model(inputs -> op -> output) and run it; `feeds` fill the non-constant inputs."""
    interp = litert.Interpreter(model_content=op_model(opcode, inputs, output, options_type, options),
                                experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    for detail, x in zip(interp.get_input_details(), feeds or []):
        interp.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=detail["dtype"]))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def same_padding(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """TFLite SAME: (out, pad_before, pad_after) with the odd pixel after."""
    out = -(-size // stride)
    span = dilation * (k - 1) + 1
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2
