"""Static output shapes of the canonical float ops (docs/float_graph.md).

The importer uses these to give every tensor a static shape without trusting the
file's own value_info, and `edgeq.verify` recomputes them to check a graph after each
pass. Shapes are plain tuples of ints; the batch dimension is whatever the graph says
(1 for imported models).
"""
from __future__ import annotations

import math

import numpy as np

# Window sizes, strides, dilations and pads: far above any model's (the C kernels use int).
MAX_WINDOW = 1 << 16


def conv_out(size: int, k: int, stride: int, pad_begin: int, pad_end: int, dil: int) -> int:
    """Floor-mode output length of a convolution / pooling window along one axis."""
    return (size + pad_begin + pad_end - ((k - 1) * dil + 1)) // stride + 1


def broadcast(a: tuple, b: tuple) -> tuple:
    """numpy broadcasting of two shapes; ValueError when they do not broadcast."""
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def resolve_reshape(in_shape: tuple, target, allowzero: bool = False) -> tuple:
    """ONNX Reshape semantics: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = [int(d) for d in target]
    if not allowzero:
        out = [in_shape[i] if d == 0 else d for i, d in enumerate(out)]
    total = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        raise ValueError(f"Reshape target {list(target)} has more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {in_shape} to {list(target)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise ValueError(f"cannot reshape {in_shape} to {list(target)}")
    return tuple(out)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise ValueError(why)


def _window(shape, attrs, kernel):
    _need(len(shape) == 4, f"input rank {len(shape)}, expected 4 (N, C, H, W)")
    n, c, h, w = shape
    s, p = attrs["strides"], attrs["pads"]
    d = attrs.get("dilations", [1, 1])
    _need(len(kernel) == 2 and len(s) == 2 and len(d) == 2 and len(p) == 4,
          f"kernel {list(kernel)}, strides {list(s)}, dilations {list(d)} need 2 values each, pads {list(p)} 4")
    _need(all(v > 0 for v in list(kernel) + list(s) + list(d)), "kernel, strides and dilations must be positive")
    _need(all(v <= MAX_WINDOW for v in list(kernel) + list(s) + list(d) + list(p)),
          f"kernel, strides, dilations and pads must be at most {MAX_WINDOW}")
    return (conv_out(h, kernel[0], s[0], p[0], p[2], d[0]),
            conv_out(w, kernel[1], s[1], p[1], p[3], d[1]))


def infer_shape(op: str, in_shapes: list[tuple], attrs: dict) -> tuple:
    """Output shape of one canonical float op (every canonical op has one output).
    ValueError when the inputs and attributes do not fit together."""
    x = tuple(in_shapes[0]) if in_shapes else ()
    if op == "Conv":
        w = tuple(in_shapes[1])
        _need(len(w) == 4, f"weight rank {len(w)}, expected 4")
        g = int(attrs.get("group", 1))
        _need(len(x) == 4 and g > 0 and x[1] == w[1] * g and w[0] % g == 0,
              f"weight {w} with group={g} does not fit input {x}")
        return (x[0], w[0]) + _window(x, attrs, w[2:])
    if op == "Gemm":
        w = tuple(in_shapes[1])
        _need(len(x) == 2 and len(w) == 2 and x[1] == w[1], f"x {x} @ W{w}.T does not fit")
        return (x[0], w[0])
    if op in ("MaxPool", "AveragePool"):
        return x[:2] + _window(x, attrs, attrs["kernel"])
    if op == "GlobalAveragePool":
        _need(len(x) == 4, f"input rank {len(x)}, expected 4")
        return x[:2] + (1, 1)
    if op in ("Add", "Mul", "PRelu"):
        return broadcast(x, in_shapes[1])
    if op == "Concat":
        ax = attrs["axis"]
        _need(0 <= ax < len(x), f"axis {ax} of rank {len(x)}")
        _need(all(len(s) == len(x) and all(a == b for i, (a, b) in enumerate(zip(s, x)) if i != ax)
                  for s in in_shapes), f"shapes {in_shapes} differ outside axis {ax}")
        return x[:ax] + (sum(s[ax] for s in in_shapes),) + x[ax + 1:]
    if op == "Reshape":
        return resolve_reshape(x, attrs["shape"])
    if op == "Transpose":
        _need(sorted(attrs["perm"]) == list(range(len(x))), f"perm {list(attrs['perm'])} for rank {len(x)}")
        return tuple(x[p] for p in attrs["perm"])
    if op == "Pad":
        p, r = attrs["pads"], len(x)
        _need(len(p) == 2 * r, f"{len(p)} pads for rank {r}")
        return tuple(x[i] + p[i] + p[i + r] for i in range(r))
    if op == "Softmax":
        _need(0 <= attrs["axis"] < len(x), f"axis {attrs['axis']} of rank {len(x)}")
    # Elementwise unary ops, BatchNormalization, Softmax, Identity keep the shape.
    return x


def ceil_extra_pad(size: int, k: int, stride: int, pb: int, pe: int, dil: int) -> int:
    """Extra end padding that makes floor-mode pooling equal ceil_mode=1 along one axis.

    Ceil mode adds one more window when the last stride leaves a partial window, but
    (PyTorch's and onnxruntime's rule) never a window that starts in the end padding.
    """
    eff = (k - 1) * dil + 1
    out = math.ceil((size + pb + pe - eff) / stride) + 1
    if (out - 1) * stride >= size + pb:
        out -= 1
    need = (out - 1) * stride + eff - (size + pb + pe)
    return max(need, 0)
