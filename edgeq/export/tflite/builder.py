"""A small TFLite flatbuffer writer over the generated `tflite` schema package.

The exporter first collects plain Python records (tensors, buffers, operators) and only
serializes at the end, because a flatbuffer is built bottom-up (children before parents)
while the conversion walks the graph top-down.

Schema facts this relies on (TFLite schema v3):
- buffer 0 is the empty sentinel buffer; every tensor without data points at it;
- a tensor's quantization is a QuantizationParameters table (scale[], zero_point[],
  quantized_dimension), scale stored as float32: runtimes derive their fixed-point
  multipliers from these float32 values, which is why the quantizer's scales are float32
  (edgeq.quantize_rules.multipliers);
- OperatorCode carries the builtin code twice: `deprecated_builtin_code` (int8, codes
  < 127) and `builtin_code` (int32); old readers use the first;
- the file identifier is "TFL3".
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType


def _schema(table: str):
    """The generated module of a schema table (the package itself re-exports classes
    under the same names, so `tflite.Model` is the class, not the builder module)."""
    return importlib.import_module(f"tflite.{table}")


SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
PLACEHOLDER_FOR_GREATER_OP_CODES = 127

NUMPY_TO_TFLITE = {
    "int8": TensorType.INT8, "int16": TensorType.INT16, "int32": TensorType.INT32,
    "int64": TensorType.INT64, "uint8": TensorType.UINT8, "float32": TensorType.FLOAT32,
}


@dataclass
class TQuant:
    scale: list[float]
    zero_point: list[int]
    axis: int = 0


@dataclass
class TTensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int = 0
    quant: TQuant | None = None


@dataclass
class TOperator:
    opcode: int                      # index into ModelBuilder.opcodes
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0            # BuiltinOptions enum
    options: dict = field(default_factory=dict)
    options_table: str = ""          # e.g. "Conv2DOptions"


class ModelBuilder:
    def __init__(self, description: str = "edgeq"):
        self.description = description
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty sentinel
        self.tensors: list[TTensor] = []
        self.opcodes: list[int] = []
        self.operators: list[TOperator] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.metadata: list[tuple[str, int]] = []
        self._names: set[str] = set()

    # ---- collection ------------------------------------------------------------------
    def unique(self, name: str) -> str:
        base, i = name or "t", 0
        while name in self._names or not name:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def tensor(self, name: str, shape, dtype: str, quant: TQuant | None = None,
               data: np.ndarray | None = None) -> int:
        buf = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            if tuple(arr.shape) != tuple(shape):
                raise ValueError(f"constant {name}: data shape {arr.shape} != {tuple(shape)}")
            buf = len(self.buffers)
            self.buffers.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        self.tensors.append(TTensor(self.unique(name), tuple(int(s) for s in shape), dtype, buf, quant))
        return len(self.tensors) - 1

    def opcode(self, builtin: int) -> int:
        if builtin not in self.opcodes:
            self.opcodes.append(builtin)
        return self.opcodes.index(builtin)

    def op(self, builtin: int, inputs, outputs, table: str = "", **options) -> TOperator:
        opt_type = getattr(BuiltinOptions, table) if table else 0
        o = TOperator(self.opcode(builtin), list(inputs), list(outputs), opt_type, options, table)
        self.operators.append(o)
        return o

    def add_metadata(self, name: str, payload: bytes) -> None:
        self.buffers.append(payload)
        self.metadata.append((name, len(self.buffers) - 1))

    # ---- serialization -----------------------------------------------------------------
    def serialize(self) -> bytes:
        b = flatbuffers.Builder(1024 + sum(len(x) for x in self.buffers))
        buffers = [self._buffer(b, data) for data in self.buffers]
        tensors = [self._tensor(b, t) for t in self.tensors]
        operators = [self._operator(b, o) for o in self.operators]
        sub = self._subgraph(b, tensors, operators)
        codes = [self._opcode(b, c) for c in self.opcodes]
        meta = [self._metadata(b, name, idx) for name, idx in self.metadata]
        desc = b.CreateString(self.description)
        codes_v = _vector(b, _schema('Model').ModelStartOperatorCodesVector, codes)
        subs_v = _vector(b, _schema('Model').ModelStartSubgraphsVector, [sub])
        bufs_v = _vector(b, _schema('Model').ModelStartBuffersVector, buffers)
        meta_v = _vector(b, _schema('Model').ModelStartMetadataVector, meta) if meta else None
        M = _schema('Model')
        M.ModelStart(b)
        M.ModelAddVersion(b, SCHEMA_VERSION)
        M.ModelAddOperatorCodes(b, codes_v)
        M.ModelAddSubgraphs(b, subs_v)
        M.ModelAddDescription(b, desc)
        M.ModelAddBuffers(b, bufs_v)
        if meta_v is not None:
            M.ModelAddMetadata(b, meta_v)
        b.Finish(M.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())

    @staticmethod
    def _buffer(b, data: bytes) -> int:
        vec = None
        if data:
            # 16-byte alignment lets runtimes read weights in place (TFLM requires >= 4)
            b.StartVector(1, len(data), 16)
            b.head = b.head - len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            b.vectorNumElems = len(data)
            vec = b.EndVector()
        _schema('Buffer').BufferStart(b)
        if vec is not None:
            _schema('Buffer').BufferAddData(b, vec)
        return _schema('Buffer').BufferEnd(b)

    @staticmethod
    def _tensor(b, t: TTensor) -> int:
        name = b.CreateString(t.name)
        shape = b.CreateNumpyVector(np.asarray(t.shape, dtype=np.int32))
        quant = None
        if t.quant is not None:
            sc = b.CreateNumpyVector(np.asarray(t.quant.scale, dtype=np.float32))
            zp = b.CreateNumpyVector(np.asarray(t.quant.zero_point, dtype=np.int64))
            Q = _schema('QuantizationParameters')
            Q.QuantizationParametersStart(b)
            Q.QuantizationParametersAddScale(b, sc)
            Q.QuantizationParametersAddZeroPoint(b, zp)
            Q.QuantizationParametersAddQuantizedDimension(b, int(t.quant.axis))
            quant = Q.QuantizationParametersEnd(b)
        T = _schema('Tensor')
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, NUMPY_TO_TFLITE[t.dtype])
        T.TensorAddBuffer(b, t.buffer)
        T.TensorAddName(b, name)
        if quant is not None:
            T.TensorAddQuantization(b, quant)
        return T.TensorEnd(b)

    @staticmethod
    def _options(b, o: TOperator) -> int | None:
        if not o.options_table:
            return None
        mod = _schema(o.options_table)
        getattr(mod, f"{o.options_table}Start")(b)
        for key, value in o.options.items():
            getattr(mod, f"{o.options_table}Add{key}")(b, value)
        return getattr(mod, f"{o.options_table}End")(b)

    def _operator(self, b, o: TOperator) -> int:
        opts = self._options(b, o)
        ins = b.CreateNumpyVector(np.asarray(o.inputs, dtype=np.int32))
        outs = b.CreateNumpyVector(np.asarray(o.outputs, dtype=np.int32))
        P = _schema('Operator')
        P.OperatorStart(b)
        P.OperatorAddOpcodeIndex(b, o.opcode)
        P.OperatorAddInputs(b, ins)
        P.OperatorAddOutputs(b, outs)
        if opts is not None:
            P.OperatorAddBuiltinOptionsType(b, o.options_type)
            P.OperatorAddBuiltinOptions(b, opts)
        return P.OperatorEnd(b)

    def _subgraph(self, b, tensors, operators) -> int:
        S = _schema('SubGraph')
        t_v = _vector(b, S.SubGraphStartTensorsVector, tensors)
        in_v = b.CreateNumpyVector(np.asarray(self.inputs, dtype=np.int32))
        out_v = b.CreateNumpyVector(np.asarray(self.outputs, dtype=np.int32))
        op_v = _vector(b, S.SubGraphStartOperatorsVector, operators)
        name = b.CreateString("main")
        S.SubGraphStart(b)
        S.SubGraphAddTensors(b, t_v)
        S.SubGraphAddInputs(b, in_v)
        S.SubGraphAddOutputs(b, out_v)
        S.SubGraphAddOperators(b, op_v)
        S.SubGraphAddName(b, name)
        return S.SubGraphEnd(b)

    @staticmethod
    def _opcode(b, code: int) -> int:
        C = _schema('OperatorCode')
        C.OperatorCodeStart(b)
        C.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, PLACEHOLDER_FOR_GREATER_OP_CODES))
        C.OperatorCodeAddBuiltinCode(b, code)
        C.OperatorCodeAddVersion(b, 1)
        return C.OperatorCodeEnd(b)

    @staticmethod
    def _metadata(b, name: str, buffer: int) -> int:
        s = b.CreateString(name)
        _schema('Metadata').MetadataStart(b)
        _schema('Metadata').MetadataAddName(b, s)
        _schema('Metadata').MetadataAddBuffer(b, buffer)
        return _schema('Metadata').MetadataEnd(b)


def _vector(b, start_fn, offsets: list[int]) -> int:
    start_fn(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


__all__ = ["ModelBuilder", "TQuant", "TTensor", "BuiltinOperator"]
