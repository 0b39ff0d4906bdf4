"""Shape arithmetic the ops' shape rules share (and the importer, which resolves ONNX's
Reshape targets and pooling windows with the same functions).

Shapes are plain tuples of ints; the batch dimension is whatever the graph says (1 for
imported models).
"""
from __future__ import annotations

import numpy as np


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


def window(shape: tuple, attrs, kernel) -> tuple:
    """Output spatial dims of a conv / pool window over an [N, C, H, W] (or 1-D [N, C, L])
    input; strides, pads (all begins, then all ends) and dilations default to 1, 0, 1."""
    spatial = tuple(shape[2:])
    nd = len(spatial)
    s = attrs.get("strides") or [1] * nd
    p = attrs.get("pads") or [0] * (2 * nd)
    d = attrs.get("dilations") or [1] * nd
    return tuple(conv_out(spatial[i], int(kernel[i]), int(s[i]), int(p[i]), int(p[i + nd]), int(d[i]))
                 for i in range(nd))


def same(ins: list[tuple], attrs) -> tuple:
    """Elementwise unary ops, BatchNormalization, Softmax, Identity keep the shape."""
    return tuple(ins[0])


def broadcast_two(ins: list[tuple], attrs) -> tuple:
    return broadcast(ins[0], ins[1])


def concat(ins: list[tuple], attrs) -> tuple:
    x, ax = tuple(ins[0]), int(attrs["axis"])
    return x[:ax] + (sum(s[ax] for s in ins),) + x[ax + 1:]


def transpose(ins: list[tuple], attrs) -> tuple:
    x = tuple(ins[0])
    perm = attrs.get("perm")
    perm = list(range(len(x)))[::-1] if perm is None else perm  # ONNX's default
    return tuple(x[int(p)] for p in perm)


def pad(ins: list[tuple], attrs) -> tuple:
    x, p = tuple(ins[0]), attrs["pads"]
    r = len(x)
    return tuple(x[i] + int(p[i]) + int(p[i + r]) for i in range(r))


def reshape(ins: list[tuple], attrs) -> tuple:
    return resolve_reshape(tuple(ins[0]), attrs["shape"])


def layer(ins: list[tuple], attrs) -> tuple:
    """Conv (W [Co, Ci/g, k...]) or Gemm (W [Co, K]): batch, Co, then the conv window."""
    x, w = tuple(ins[0]), tuple(ins[1])
    if len(w) == 2:
        return (x[0], w[0])
    return (x[0], w[0]) + window(x, attrs, w[2:])


def pool(ins: list[tuple], attrs) -> tuple:
    x = tuple(ins[0])
    return x[:2] + window(x, attrs, attrs["kernel"])


def global_pool(ins: list[tuple], attrs) -> tuple:
    return tuple(ins[0])[:2] + (1, 1)
