"""The importer's state: the TFLite model being read, the ai.edgeq graph being written,
and the layout of every activation.

Layout: TFLite is NHWC, edgeq NCHW. The graph's inputs and outputs keep TFLite's shapes
(a user feeds edgeq the arrays TFLite Micro takes); a rank-4 activation is moved to NCHW
where a spatial op reads it (`nchw`) and back where an op reads TFLite's byte order
(`plain`: RESHAPE, FULLY_CONNECTED, SOFTMAX). When only one of C and H*W exceeds 1 the two
orders are the same bytes, so the move is a QReshape (an alias in C), else a QTranspose.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import QDOMAIN, Graph, Node, QParams, Tensor
from edgeq.quantization.rules.common import quantize_clamp
from edgeq.tflite_import.reader import TModel, TOp, TTensor

TO_NCHW = (0, 3, 1, 2)   # edgeq axis j holds TFLite axis TO_NCHW[j]
TO_NHWC = (0, 2, 3, 1)
FIX = "edgeq imports int8 models with the builtins listed in docs/ops.md; run this one with TFLite Micro"

# FusedActivationFunction -> the float clamp TFLite applies (CalculateActivationRangeQuantized)
ACTIVATIONS = {0: (None, None), 1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def nchw_shape(shape) -> tuple[int, ...]:
    return tuple(shape[a] for a in TO_NCHW)


def same_bytes(shape) -> bool:
    """NHWC and NCHW orders of `shape` (TFLite's) are the same bytes: at most one of C, H*W > 1."""
    n, h, w, c = shape
    return c == 1 or h * w == 1


def op_error(op: TOp, cause: str, fix: str = FIX) -> EdgeqError:
    return EdgeqError(f"TFLite operator {op.index} ({op.builtin}): {cause}", fix)


class Importer:
    def __init__(self, model: TModel):
        self.m = model
        self.g = Graph(model.name)
        self.g.meta = {"quant_layers": {}, "imported_from": "tflite"}
        self.names: dict[int, str] = {}        # TFLite tensor index -> edgeq tensor (TFLite layout)
        self.nchw_names: dict[int, str] = {}   # TFLite tensor index -> its NCHW edgeq tensor
        self.node_names: set[str] = set()

    # ---- tensors -----------------------------------------------------------------
    def t(self, index: int) -> TTensor:
        return self.m.tensors[index]

    def qparams(self, t: TTensor, axis: int | None = None) -> QParams:
        if not t.quantized:
            raise EdgeqError(f"TFLite tensor {t.name!r} has no quantization parameters",
                             "give a fully int8-quantized model (TFLite converter with "
                             "representative data and int8 inference types)")
        if axis is None:
            return QParams(t.scale[0], t.zero_point[0])
        return QParams(t.scale, t.zero_point, axis=axis)

    def new_name(self, base: str) -> str:
        return self.g.unique_name(base.split(";")[0] or "t")

    def activation(self, index: int, nchw: bool) -> str:
        """Declare TFLite activation `index` as produced here, in NCHW or TFLite layout."""
        t = self.t(index)
        if t.dtype != "int8":
            raise EdgeqError(f"TFLite tensor {t.name!r} is {t.dtype}, not int8",
                             "convert the model with int8 activations (inference_input_type "
                             "and inference_output_type int8)")
        shape = nchw_shape(t.shape) if nchw else t.shape
        name = self.new_name(t.name)
        self.g.add_tensor(Tensor(name, tuple(shape), "int8", None, self.qparams(t)))
        (self.nchw_names if nchw else self.names)[index] = name
        return name

    def plain(self, index: int) -> str:
        """Activation `index` in TFLite's layout (moved back from NCHW if needed)."""
        if index not in self.names:
            src = self.nchw_names[index]
            shape = self.t(index).shape
            dst = self.activation(index, nchw=False)
            self._move(src, dst, shape, TO_NHWC, f"{dst}_to_nhwc")
        return self.names[index]

    def nchw(self, index: int) -> str:
        """Rank-4 activation `index` in edgeq's NCHW layout."""
        if len(self.t(index).shape) != 4:
            raise EdgeqError(f"TFLite tensor {self.t(index).name!r} has shape {self.t(index).shape}, "
                             "not rank 4", FIX)
        if index not in self.nchw_names:
            src = self.names[index]
            shape = self.t(index).shape
            dst = self.activation(index, nchw=True)
            self._move(src, dst, shape, TO_NCHW, f"{dst}_to_nchw")
        return self.nchw_names[index]

    def _move(self, src: str, dst: str, tflite_shape, perm, name: str) -> None:
        if same_bytes(tflite_shape):
            self.node("QReshape", name, [src], [dst], {"shape": [0] + list(self.g.tensors[dst].shape[1:])})
        else:
            self.node("QTranspose", name, [src], [dst], {"perm": list(perm)})

    def const(self, base: str, data: np.ndarray, q: QParams | None = None) -> str:
        return self.g.add_const(self.new_name(base), data, q)

    def i32(self, base: str, values) -> str:
        return self.const(base, np.asarray(values, dtype=np.int32))

    # ---- nodes ---------------------------------------------------------------------
    def node(self, op: str, name: str, inputs: list[str], outputs: list[str], attrs: dict) -> Node:
        base, k = name, 0
        while name in self.node_names:
            k += 1
            name = f"{base}_{k}"
        self.node_names.add(name)
        n = Node(op, name, list(inputs), list(outputs), dict(attrs), QDOMAIN)
        self.g.nodes.append(n)
        return n

    def clamp(self, op: TOp, fused: int, q: QParams) -> tuple[int, int]:
        """act_min, act_max of a fused activation, as TFLite computes them from the output."""
        if fused not in ACTIVATIONS:
            raise op_error(op, f"fused activation {fused} (TANH / SIGN_BIT) has no int8 kernel in TFLite Micro")
        return quantize_clamp(q, *ACTIVATIONS[fused])

    def record(self, node: str, **info) -> None:
        self.g.meta["quant_layers"].setdefault(node, {}).update(info)
