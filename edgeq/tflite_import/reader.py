"""Read a .tflite flatbuffer into plain Python objects (the `tflite` package's generated
schema reader; no TensorFlow).

Only what the importer needs: the first subgraph's tensors (shape, type, quantization,
constant data) and operators (builtin name, inputs, outputs, options table). Anything the
importer cannot take as it is (several subgraphs, custom ops, sparse or 64-bit-offset
buffers) is refused here with one line naming it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError

# tflite.TensorType values -> numpy dtype names (the ones an int8 model holds)
DTYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8", 17: "int4"}
IDENTIFIER = b"TFL3"


@dataclass
class TTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None          # constants only, in TFLite's layout
    scale: np.ndarray | None = None         # float32 values (as float64), [] when unquantized
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale.size > 0


@dataclass
class TOp:
    index: int
    builtin: str                 # e.g. "CONV_2D"
    version: int
    inputs: list[int]            # -1: an omitted optional input
    outputs: list[int]
    options: object | None = None  # the builtin's options table (tflite.Conv2DOptions, ...)


@dataclass
class TModel:
    name: str
    tensors: list[TTensor]
    ops: list[TOp]
    inputs: list[int]
    outputs: list[int]
    description: str = ""
    builtins: dict[int, str] = field(default_factory=dict)


def is_tflite(path) -> bool:
    """A .tflite file (the flatbuffer's file identifier, bytes 4..8, is "TFL3")."""
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == IDENTIFIER
    except OSError:
        return False


def _builtin_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _options_classes() -> dict[int, type]:
    """BuiltinOptions union tag -> the generated options class (tflite.Conv2DOptions, ...)."""
    import tflite
    from tflite.BuiltinOptions import BuiltinOptions
    return {v: getattr(tflite, k) for k, v in vars(BuiltinOptions).items()
            if not k.startswith("_") and hasattr(tflite, k)}


def read_tflite(path: str | Path) -> TModel:
    import tflite
    path = Path(path)
    data = path.read_bytes()
    if data[4:8] != IDENTIFIER:
        raise EdgeqError(f"{path} is not a .tflite flatbuffer (no \"TFL3\" identifier)",
                         "give an int8 .tflite file written by the TFLite converter")
    try:
        m = tflite.Model.GetRootAs(data, 0)
        if m.SubgraphsLength() != 1:
            raise EdgeqError(f"{path} has {m.SubgraphsLength()} subgraphs (control flow or "
                             "signatures edgeq does not import)",
                             "convert a model with one subgraph (no WHILE / IF / CALL_ONCE)")
        g = m.Subgraphs(0)
        names = _builtin_names()
        classes = _options_classes()
        tensors = [_tensor(m, g.Tensors(i), i, path) for i in range(g.TensorsLength())]
        ops = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            code = m.OperatorCodes(op.OpcodeIndex())
            builtin = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            if builtin == "CUSTOM":
                custom = (code.CustomCode() or b"?").decode(errors="replace")
                raise EdgeqError(f"{path}: operator {i} is the custom op {custom!r}",
                                 "edgeq imports TFLite builtin operators only")
            options = None
            cls = classes.get(op.BuiltinOptionsType())
            table = op.BuiltinOptions()
            if cls is not None and table is not None:
                options = cls()
                options.Init(table.Bytes, table.Pos)
            ops.append(TOp(i, builtin, code.Version(), [int(k) for k in op.InputsAsNumpy()],
                           [int(k) for k in op.OutputsAsNumpy()], options))
        desc = (m.Description() or b"").decode(errors="replace")
        return TModel((g.Name() or b"").decode(errors="replace") or path.stem, tensors, ops,
                      [int(k) for k in g.InputsAsNumpy()], [int(k) for k in g.OutputsAsNumpy()], desc)
    except EdgeqError:
        raise
    except Exception as e:  # a damaged flatbuffer raises anything from struct to IndexError
        raise EdgeqError(f"cannot read {path} as a .tflite model ({type(e).__name__}: {e})",
                         "check that the file is complete and was written by the TFLite converter") from None


def _tensor(m, t, index: int, path: Path) -> TTensor:
    name = (t.Name() or b"").decode(errors="replace") or f"tensor_{index}"
    if t.Sparsity() is not None:
        raise EdgeqError(f"{path}: tensor {name!r} is sparse", "convert the model without sparsity")
    dtype = DTYPES.get(t.Type())
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    tensor = TTensor(index, name, shape, dtype or f"type{t.Type()}")
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        tensor.scale = np.asarray(q.ScaleAsNumpy(), np.float32).astype(np.float64)
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength())
        tensor.zero_point = np.asarray(zp, np.int64)
        tensor.quantized_dimension = int(q.QuantizedDimension())
    buf = m.Buffers(t.Buffer())
    if buf is not None and buf.Offset() > 1:
        raise EdgeqError(f"{path}: tensor {name!r} is stored outside the flatbuffer (a model over 2 GB)",
                         "edgeq imports models whose buffers are inside the flatbuffer")
    if buf is not None and buf.DataLength():
        if dtype is None or dtype == "int4":
            raise EdgeqError(f"{path}: constant {name!r} has TFLite type {t.Type()}",
                             "convert the model with int8 weights and int32 biases")
        raw = buf.DataAsNumpy().tobytes()
        tensor.data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    return tensor
