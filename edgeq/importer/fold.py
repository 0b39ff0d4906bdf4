"""Import-time evaluation of ONNX nodes whose inputs are all known constants.

Exporters compute Reshape targets with Shape -> Gather -> Unsqueeze -> Concat chains,
cast weights, transpose them, and so on. Because every tensor has a static shape after
import, `Shape` of any tensor is a constant, and the whole chain collapses to one
constant. numpy evaluates these ops here (ONNX semantics, opset 13+); the result never
reaches the canonical graph as a node.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from onnx import helper, TensorProto

from edgeq.ops.shapes import resolve_reshape

Fold = Callable[[list, dict], list]

_NP_OF_ONNX = {getattr(TensorProto, k): helper.tensor_dtype_to_np_dtype(getattr(TensorProto, k))
               for k in ("FLOAT", "DOUBLE", "FLOAT16", "INT8", "UINT8", "INT16", "UINT16",
                         "INT32", "UINT32", "INT64", "UINT64", "BOOL")}


def _axes(inputs, attrs, idx=1):
    """Axes from the input (opset 13+ Squeeze/Unsqueeze, 18+ reductions) or the attribute."""
    if len(inputs) > idx and inputs[idx] is not None:
        return [int(a) for a in np.asarray(inputs[idx]).reshape(-1)]
    a = attrs.get("axes")
    return None if a is None else [int(v) for v in a]


def _unsqueeze(i, a):
    x = i[0]
    axes = _axes(i, a)
    r = x.ndim + len(axes)
    for ax in sorted(normalize_axis_index(ax, r) for ax in axes):
        x = np.expand_dims(x, ax)
    return [x]


def _squeeze(i, a):
    axes = _axes(i, a)
    x = i[0]
    return [np.squeeze(x) if axes is None else np.squeeze(x, tuple(normalize_axis_index(ax, x.ndim) for ax in axes))]


def _slice(i, a):
    x = i[0]
    starts, ends = np.asarray(i[1]).reshape(-1), np.asarray(i[2]).reshape(-1)
    axes = np.asarray(i[3]).reshape(-1) if len(i) > 3 and i[3] is not None else np.arange(len(starts))
    steps = np.asarray(i[4]).reshape(-1) if len(i) > 4 and i[4] is not None else np.ones(len(starts), np.int64)
    sl = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        sl[int(ax)] = onnx_slice(x.shape[int(ax)], int(s), int(e), int(st))
    return [x[tuple(sl)]]


def onnx_slice(n: int, start: int, end: int, step: int) -> slice:
    """ONNX Slice's range along an axis of length n as a Python slice (the same elements):
    clamped like ONNX, so huge sentinel ends (INT64_MAX) mean "to the end"."""
    if step == 0:
        raise ValueError("Slice step 0")
    s, e = max(min(start, n), -n - 1), max(min(end, n), -n - 1)
    return slice(s, e if not (step < 0 and e < -n) else None, step)


def _cast(i, a):
    return [i[0].astype(_NP_OF_ONNX[a["to"]])]


def _gather(i, a):
    return [np.take(i[0], np.asarray(i[1]).astype(np.int64), axis=a.get("axis", 0))]


def _reshape(i, a):
    return [i[0].reshape(resolve_reshape(i[0].shape, i[1], bool(a.get("allowzero", 0))))]


def _reduce(fn):
    def f(i, a):
        axes = _axes(i, a)
        keep = bool(a.get("keepdims", 1))
        ax = None if not axes else tuple(axes)
        return [fn(i[0], axis=ax, keepdims=keep)]
    return f


def _const_of_shape(i, a):
    v = a.get("value")
    val = np.zeros(1, np.float32) if v is None else v
    return [np.full([int(d) for d in i[0]], val.reshape(-1)[0], dtype=val.dtype)]


def _bn(i, a):
    x, s, b, m, v = i[:5]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = a.get("epsilon", 1e-5)
    return [((x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps) * s.reshape(shape)
             + b.reshape(shape)).astype(x.dtype)]


def _pad_list(i, a, r: int) -> list[int]:
    """(begins..., ends...) over all r axes, from the pads input (and opset 18's axes) or attribute."""
    pads = [int(p) for p in (np.asarray(i[1]).reshape(-1) if len(i) > 1 and i[1] is not None else a["pads"])]
    if len(i) > 3 and i[3] is not None:
        axes = [normalize_axis_index(int(ax), r) for ax in np.asarray(i[3]).reshape(-1)]
        full = [0] * 2 * r
        for k, ax in enumerate(axes):
            full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
        pads = full
    if len(pads) != 2 * r:
        raise ValueError(f"{len(pads)} pads for rank {r}")
    return pads


def _pad_np(i, a):
    x = i[0]
    if a.get("mode", "constant") != "constant":
        raise ValueError(f"mode {a['mode']!r}")
    pads = _pad_list(i, a, x.ndim)
    val = i[2].reshape(-1)[0] if len(i) > 2 and i[2] is not None else 0
    r = x.ndim
    return [np.pad(x, [(pads[k], pads[k + r]) for k in range(r)], constant_values=val)]


def _tile_reps(i) -> list[int]:
    """ONNX Tile: one non-negative repeat per axis (numpy would prepend axes for extra repeats)."""
    reps = [int(r) for r in np.asarray(i[1]).reshape(-1)]
    if len(reps) != np.ndim(i[0]) or any(r < 0 for r in reps):
        raise ValueError(f"Tile repeats {reps[:8]} for a rank-{np.ndim(i[0])} tensor")
    return reps


def _typed(fn):
    """Binary arithmetic keeps the left operand's dtype, like ONNX (both are equal there)."""
    return lambda i, a: [np.asarray(fn(i[0], i[1])).astype(i[0].dtype)]


FOLDERS: dict[str, Fold] = {
    "Identity": lambda i, a: [i[0]],
    "Dropout": lambda i, a: [i[0]],
    "Cast": _cast,
    "CastLike": lambda i, a: [i[0].astype(i[1].dtype)],
    "Gather": _gather,
    "Concat": lambda i, a: [np.concatenate(i, axis=a["axis"])],
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Reshape": _reshape,
    "Flatten": lambda i, a: [i[0].reshape(int(np.prod(i[0].shape[:normalize_axis_index(a.get("axis", 1), i[0].ndim + 1)])),
                                          -1)],
    "Transpose": lambda i, a: [np.transpose(i[0], a.get("perm"))],
    "Add": _typed(np.add),
    "Sub": _typed(np.subtract),
    "Mul": _typed(np.multiply),
    "Div": lambda i, a: [(i[0] // i[1] if np.issubdtype(i[0].dtype, np.integer)
                          else i[0] / i[1]).astype(i[0].dtype)],
    "Pow": _typed(np.power),
    "Neg": lambda i, a: [-i[0]],
    "Abs": lambda i, a: [np.abs(i[0])],
    "Sqrt": lambda i, a: [np.sqrt(i[0])],
    "Reciprocal": lambda i, a: [(1 / i[0]).astype(i[0].dtype)],
    "Floor": lambda i, a: [np.floor(i[0])],
    "Ceil": lambda i, a: [np.ceil(i[0])],
    "Min": lambda i, a: [functools.reduce(np.minimum, i)],  # broadcasting, like ONNX
    "Max": lambda i, a: [functools.reduce(np.maximum, i)],
    "Equal": lambda i, a: [np.equal(i[0], i[1])],
    "Less": lambda i, a: [np.less(i[0], i[1])],
    "Greater": lambda i, a: [np.greater(i[0], i[1])],
    "Not": lambda i, a: [np.logical_not(i[0])],
    "Where": lambda i, a: [np.where(i[0], i[1], i[2])],
    "Expand": lambda i, a: [i[0] * np.ones([int(d) for d in i[1]], dtype=i[0].dtype)],
    "Tile": lambda i, a: [np.tile(i[0], _tile_reps(i))],
    "Range": lambda i, a: [np.arange(i[0], i[1], i[2]).astype(np.asarray(i[0]).dtype)],
    "ConstantOfShape": _const_of_shape,
    "ReduceProd": _reduce(np.prod),
    "ReduceSum": _reduce(np.sum),
    "ReduceMean": _reduce(np.mean),
    "ReduceMax": _reduce(np.max),
    "ReduceMin": _reduce(np.min),
    "MatMul": lambda i, a: [np.matmul(i[0], i[1])],
    "Relu": lambda i, a: [np.maximum(i[0], 0).astype(i[0].dtype)],
    "Clip": lambda i, a: [np.clip(i[0], *(i[k] if len(i) > k and i[k] is not None else None for k in (1, 2)))],
    "BatchNormalization": _bn,
    "Pad": _pad_np,
    "Size": lambda i, a: [np.array(i[0].size, np.int64)],
    "Shape": lambda i, a: [np.array(i[0].shape, np.int64)],
}


class FoldFailed(ValueError):
    """The op has a folder, but numpy could not evaluate it on these constants."""


def fold_node(op: str, inputs: list, attrs: dict) -> list | None:
    """Evaluate `op` on constant numpy inputs ("" inputs are None); None when no folder
    exists. Garbage constants may give NaN or inf here: they are refused where a constant
    enters the graph, so numpy's warnings are silenced."""
    fn = FOLDERS.get(op)
    if fn is None:
        return None
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [np.asarray(o) for o in fn(inputs, attrs)]
    except Exception as e:  # noqa: BLE001 - the importer converts the op instead, or reports this
        raise FoldFailed(f"{type(e).__name__}: {e}") from None


# ---- how big a folded result would be, before numpy allocates it ------------------------

def _shape(x) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(x)) if x is not None else ()


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    return n


def _broadcast(*shapes) -> tuple[int, ...]:
    """The broadcast shape's upper bound: the largest dim at each (right-aligned) axis."""
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(col) for col in zip(*padded)) if padded else ()


def _ints(x) -> list[int]:
    return [int(v) for v in np.asarray(x).reshape(-1)]


def _range_len(i) -> int:
    start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in i[:3])
    if delta == 0 or not all(np.isfinite([start, limit, delta])):
        return 0 if delta == 0 else 2**62
    return max(int(np.ceil((limit - start) / delta)), 0)


def _matmul(i) -> int:
    a, b = _shape(i[0]), _shape(i[1])
    n = a[-2] if len(a) >= 2 else 1
    m = b[-1] if len(b) >= 2 else 1
    batch = _broadcast(a[:-2], b[:-2])
    k = a[-1] if a else 1
    # the work, not only the result: n*k*m multiply-adds at import time
    return max(_size(batch) * n * m, _size(batch) * n * m * k // 256)


def _gather_size(i, a) -> int:
    data, axis = _shape(i[0]), int(a.get("axis", 0))
    if not -len(data) <= axis < len(data):
        return 0  # numpy refuses the axis
    axis %= len(data)
    return _size(data[:axis] + _shape(i[1]) + data[axis + 1:])


def _pad_size(i, a) -> int:
    x = _shape(i[0])
    r = len(x)
    p = _pad_list(i, a, r)
    return _size(x[k] + p[k] + p[k + r] for k in range(r))


_EXPANDING = {
    "ConstantOfShape": lambda i, a: _size(_ints(i[0])),
    "Expand": lambda i, a: _size(_broadcast(_shape(i[0]), _ints(i[1]))),
    "Tile": lambda i, a: _size(d * r for d, r in zip(_shape(i[0]), _tile_reps(i))),
    "Range": lambda i, a: _range_len(i),
    "Pad": _pad_size,
    "Concat": lambda i, a: sum(_size(_shape(x)) for x in i),
    "MatMul": lambda i, a: _matmul(i),
    "Gather": _gather_size,
}


def result_elements(op: str, inputs: list, attrs: dict) -> int:
    """An upper bound on the elements `fold_node` would produce (or, for MatMul, its work
    in units of 256 multiply-adds), from shapes and small shape-like inputs only."""
    present = [x for x in inputs if x is not None]
    try:
        if op in _EXPANDING:
            return int(_EXPANDING[op](inputs, attrs))
        return _size(_broadcast(*(_shape(x) for x in present)))  # elementwise, or smaller
    except (ValueError, TypeError, IndexError, OverflowError):
        return 0  # inputs that do not fit the op: numpy fails on them without allocating
