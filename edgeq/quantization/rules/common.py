"""What every quantization rule shares: activation parameters and the build context.

Activation parameters (TFLite's convention, docs/semantics.md):
  the calibrated range (lo, hi) is widened to contain 0 (so real 0.0, i.e. padding and
  ReLU's floor, is exactly representable), scale = (hi - lo) / 255 and
  zp = round(-128 - lo / scale), clamped to [-128, 127]. The scale is rounded to float32
  (a .tflite file stores float32 scales; every multiplier derives from them, see
  multipliers.py), so every target computes with the same parameters.
  Example: (lo, hi) = (0.0, 6.0) -> scale = float32(6/255) = 0.023529412, zp = -128;
           (-1.0, 3.0) -> scale = float32(4/255), zp = round(-128 + 63.75) = -64.
An empty range (a tensor that is always 0) gets (0, 1): any positive scale is exact there.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import QDOMAIN, Graph, Node, QParams, Tensor
from edgeq.quantization.rules.multipliers import f32


def act_qparams(lo: float, hi: float) -> QParams:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise EdgeqError(f"activation range ({lo}, {hi}) is not finite",
                         "check the calibration data for NaN/inf or use another --calib-method")
    if hi - lo <= 0.0:
        hi = 1.0
    scale = f32((hi - lo) / 255.0)
    if not 0.0 < scale < math.inf:
        raise EdgeqError(f"activation range ({lo}, {hi}) has no float32 scale (a .tflite file "
                         "and every target store scales as float32)",
                         "check the calibration data or the model for values beyond 1e38 or below 1e-36")
    zp = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return QParams(np.float64(scale), np.int64(zp))


def quantize_clamp(q: QParams, lo: float | None, hi: float | None) -> tuple[int, int]:
    """Float output clamp (a fused Relu/Relu6/Clip) -> int8 (act_min, act_max).

    TFLite's rule (CalculateActivationRangeQuantized): zp + round_half_away(bound / s) with
    the division in float32, so a Relu / Relu6 / [-1, 1] clamp is exactly the interval a
    TFLite kernel recomputes from the output's scale (the export fuses it).
    Relu: act_min = max(-128, zp); an open side stays at the int8 limit."""
    s, z = np.float32(np.ravel(q.scale)[0]), int(q.zero_point)
    qmin, qmax = -128, 127
    if lo is not None and math.isfinite(lo):
        qmin = int(np.clip(z + _round_away(np.float32(lo) / s), -128, 127))
    if hi is not None and math.isfinite(hi):
        qmax = int(np.clip(z + _round_away(np.float32(hi) / s), -128, 127))
    return qmin, max(qmin, qmax)


def _round_away(v: np.float32) -> int:
    """TfLiteRound on a float32: half away from zero (beyond +-2^20 only the sign matters:
    the result is clamped to int8)."""
    v = np.clip(v, np.float32(-(1 << 20)), np.float32(1 << 20))
    return int(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)))


class QuantContext:
    """The float graph being read, the integer graph being written and the options."""

    def __init__(self, fg: Graph, ranges: dict, weight_granularity: str, weight_bits,
                 layer_bits: dict[str, int] | None = None):
        self.fg = fg
        self.ranges = ranges
        self.per_channel = weight_granularity == "per-channel"
        self.weight_bits = weight_bits  # as the caller gave it: an int or {node: bits}
        self.layer_bits = layer_bits or {}
        self.out = Graph(fg.name)
        self.out.meta = {k: v for k, v in fg.meta.items()}
        self.out.meta["quant_layers"] = {}
        self.out.meta["quant_options"] = {"weight_granularity": weight_granularity,
                                          "weight_bits": weight_bits}
        self.wide: dict[str, str] = {}  # a recurrent state's int8 copy -> its int16 tensor (recurrent.py)

    # ---- activations ---------------------------------------------------------------
    def range_of(self, name: str) -> tuple[float, float]:
        r = self.ranges.get(name)
        if r is None:
            raise EdgeqError(f"no activation range for tensor {name!r}",
                             "calibrate the same float graph you quantize "
                             "(edgeq.calibrate.calibrate or data_free_ranges)")
        return float(r[0]), float(r[1])

    def act_params(self, name: str) -> QParams:
        return act_qparams(*self.range_of(name))

    def qp(self, name: str) -> QParams:
        t = self.out.tensors.get(name)
        if t is None or t.q is None:
            raise KeyError(f"tensor {name!r} has not been quantized yet")
        return t.q

    def add_act(self, name: str, q: QParams, shape: tuple | None = None) -> str:
        if shape is None:
            shape = self.fg.tensors[name].shape
        self.out.add_tensor(Tensor(name, tuple(shape), "int8", None, q))
        return name

    def bits_for(self, node_name: str) -> int:
        """Weight bits of one Conv/Gemm (quantize() resolved the option per layer)."""
        if node_name in self.layer_bits:
            return self.layer_bits[node_name]
        return self.weight_bits if isinstance(self.weight_bits, int) else 8

    def fconst(self, name: str) -> np.ndarray | None:
        return self.fg.const(name)

    def int8_input(self, name: str, q: QParams | None = None) -> str:
        """An int8 tensor for a node input: an activation as is, a float constant (an Add
        operand, a Concat part) quantized here with `q` or with its own min/max params."""
        data = self.fconst(name)
        if data is None:
            return name
        q = q or act_qparams(float(np.min(data)), float(np.max(data)))
        return self.out.add_const(f"{name}_q", q.quantize(data), q)

    # ---- integer constants and nodes ------------------------------------------------
    def add_const(self, base: str, data: np.ndarray, q: QParams | None = None) -> str:
        return self.out.add_const(base, data, q)

    def add_i32(self, base: str, values) -> str:
        return self.out.add_const(base, np.asarray(values, dtype=np.int32))

    def add_node(self, op: str, name: str, inputs: list[str], outputs: list[str],
                 attrs: dict[str, Any]) -> Node:
        node = Node(op, name, list(inputs), list(outputs), dict(attrs), QDOMAIN)
        self.out.nodes.append(node)
        return node

    def record(self, node_name: str, **info: Any) -> None:
        """Per-layer facts for reports (edgeq inspect, report.json)."""
        self.out.meta["quant_layers"].setdefault(node_name, {}).update(info)


def fused_clamp(ctx: QuantContext, node: Node, q: QParams) -> tuple[int, int]:
    return quantize_clamp(q, node.attr("act_min"), node.attr("act_max"))


def scalar(v) -> float:
    return float(np.ravel(v)[0])
