"""The ops' shape rules and the arithmetic they share (the importer resolves ONNX's
Reshape targets with the same functions).

A rule maps (input shapes, attributes) to the output shape and raises ValueError when the
inputs and attributes do not fit together: the importer turns that into an EdgeqError
naming the node, the verifier into an assertion. Shapes are plain tuples of ints; the
batch dimension is whatever the graph says (1 for imported models).
"""
from __future__ import annotations

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


def window(shape: tuple, attrs, kernel, ranks=(4,)) -> tuple:
    """Output spatial dims of a conv / pool window over an [N, C, H, W] input (or, where
    `ranks` allows 3, a 1-D [N, C, L] one); strides, pads (all begins, then all ends) and
    dilations default to 1, 0, 1."""
    _need(len(shape) in ranks, f"input rank {len(shape)}, expected {' or '.join(map(str, ranks))}")
    spatial = tuple(shape[2:])
    nd = len(spatial)
    s = list(attrs.get("strides") or [1] * nd)
    p = list(attrs.get("pads") or [0] * (2 * nd))
    d = list(attrs.get("dilations") or [1] * nd)
    kernel = list(kernel)
    _need(len(kernel) == len(s) == len(d) == nd and len(p) == 2 * nd,
          f"kernel {kernel}, strides {s}, dilations {d} need {nd} values each, pads {p} {2 * nd}")
    _need(all(v > 0 for v in kernel + s + d), "kernel, strides and dilations must be positive")
    _need(all(v <= MAX_WINDOW for v in kernel + s + d + p),
          f"kernel, strides, dilations and pads must be at most {MAX_WINDOW}")
    return tuple(conv_out(spatial[i], int(kernel[i]), int(s[i]), int(p[i]), int(p[i + nd]), int(d[i]))
                 for i in range(nd))


def same(ins: list[tuple], attrs) -> tuple:
    """Elementwise unary ops, BatchNormalization, Softmax, Identity keep the shape."""
    return tuple(ins[0])


def broadcast_two(ins: list[tuple], attrs) -> tuple:
    return broadcast(ins[0], ins[1])


def concat(ins: list[tuple], attrs) -> tuple:
    x, ax = tuple(ins[0]), int(attrs["axis"])
    _need(0 <= ax < len(x), f"axis {ax} of rank {len(x)}")
    _need(all(len(s) == len(x) and all(a == b for i, (a, b) in enumerate(zip(s, x)) if i != ax)
              for s in ins), f"shapes {ins} differ outside axis {ax}")
    return x[:ax] + (sum(s[ax] for s in ins),) + x[ax + 1:]


def transpose(ins: list[tuple], attrs) -> tuple:
    x = tuple(ins[0])
    perm = attrs.get("perm")
    perm = list(range(len(x)))[::-1] if perm is None else [int(p) for p in perm]  # ONNX's default
    _need(sorted(perm) == list(range(len(x))), f"perm {perm} for rank {len(x)}")
    return tuple(x[p] for p in perm)


def pad(ins: list[tuple], attrs) -> tuple:
    x, p = tuple(ins[0]), attrs["pads"]
    r = len(x)
    _need(len(p) == 2 * r, f"{len(p)} pads for rank {r}")
    return tuple(x[i] + int(p[i]) + int(p[i + r]) for i in range(r))


def gather(ins: list[tuple], attrs) -> tuple:
    """x's entries at constant `indices` along `axis`: that axis gets len(indices)."""
    x, ax, idx = tuple(ins[0]), int(attrs["axis"]), [int(i) for i in attrs["indices"]]
    _need(0 <= ax < len(x), f"axis {ax} of rank {len(x)}")
    _need(len(idx) > 0 and all(0 <= i < x[ax] for i in idx),
          f"indices must be in [0, {x[ax]}) along axis {ax} (got {len(idx)} of them)")
    return x[:ax] + (len(idx),) + x[ax + 1:]


def matmul(ins: list[tuple], attrs) -> tuple:
    """a [..., M, K] @ b [..., K, N] -> [..., M, N], the leading dims broadcast (numpy)."""
    a, b = tuple(ins[0]), tuple(ins[1])
    _need(len(a) >= 2 and len(b) >= 2 and a[-1] == b[-2], f"{a} @ {b} does not fit")
    return broadcast(a[:-2], b[:-2]) + (a[-2], b[-1])


def resize_hw(ins: list[tuple], attrs) -> tuple:
    """[N, C, H, W] -> [N, C] + sizes."""
    x, sizes = tuple(ins[0]), [int(v) for v in attrs["sizes"]]
    _need(len(x) == 4 and len(sizes) == 2 and min(sizes) > 0, f"input {x} with sizes {sizes}")
    return x[:2] + tuple(sizes)


def resize_tables(ins: list[tuple], attrs) -> tuple:
    """[N, C, H, W] -> [N, C, rows, columns] of the (lo, hi, frac) tables."""
    x, ty, tx = tuple(ins[0]), attrs["y_table"], attrs["x_table"]
    _need(len(x) == 4 and len(ty) % 3 == 0 and len(tx) % 3 == 0 and ty and tx,
          f"input {x} with tables of {len(ty)} and {len(tx)} entries (3 per output row / column)")
    return x[:2] + (len(ty) // 3, len(tx) // 3)


def reshape(ins: list[tuple], attrs) -> tuple:
    return resolve_reshape(tuple(ins[0]), attrs["shape"])


def conv(ins: list[tuple], attrs, ranks=(4,)) -> tuple:
    """W [Co, Ci/group, k...] over x [N, Ci, ...]: batch, Co, then the window."""
    x, w = tuple(ins[0]), tuple(ins[1])
    g = int(attrs.get("group", 1))
    _need(len(w) == len(x) and g > 0 and len(x) > 1 and x[1] == w[1] * g and w[0] % g == 0,
          f"weight {w} with group={g} does not fit input {x}")
    return (x[0], w[0]) + window(x, attrs, w[2:], ranks)


def conv_1d_or_2d(ins: list[tuple], attrs) -> tuple:
    return conv(ins, attrs, ranks=(3, 4))


def gemm(ins: list[tuple], attrs) -> tuple:
    """y = x @ W.T: x [N, K], W [Co, K]."""
    x, w = tuple(ins[0]), tuple(ins[1])
    _need(len(x) == 2 and len(w) == 2 and x[1] == w[1], f"x {x} @ W{w}.T does not fit")
    return (x[0], w[0])


def gemm_flattened(ins: list[tuple], attrs) -> tuple:
    """y = flatten(x) @ W.T: x [N, ...] with K values per sample, W [Co, K]."""
    x, w = tuple(ins[0]), tuple(ins[1])
    _need(len(w) == 2 and int(np.prod(x[1:], dtype=np.int64)) == w[1], f"weight {w} does not fit input {x}")
    return (x[0], w[0])


def pool(ins: list[tuple], attrs) -> tuple:
    x = tuple(ins[0])
    return x[:2] + window(x, attrs, attrs["kernel"])


def global_pool(ins: list[tuple], attrs) -> tuple:
    x = tuple(ins[0])
    _need(len(x) == 4, f"input rank {len(x)}, expected 4")
    return x[:2] + (1, 1)


_F = np.float32  # onnxruntime computes Resize's coordinates in float32; so do we, to match it


def source_coords(out_len: int, in_len: int, scale, mode: str) -> np.ndarray:
    """ONNX Resize's coordinate_transformation_mode: each output index's position in the input."""
    x = np.arange(out_len, dtype=_F)
    s = _F(scale)
    if mode == "half_pixel":
        return (x + _F(0.5)) / s - _F(0.5)
    if mode == "pytorch_half_pixel":
        return (x + _F(0.5)) / s - _F(0.5) if out_len > 1 else np.zeros(out_len, _F)
    if mode == "align_corners":
        return x * _F(in_len - 1) / _F(out_len - 1) if out_len > 1 else np.zeros(out_len, _F)
    if mode == "asymmetric":
        return x / s
    if mode == "tf_half_pixel_for_nn":
        return (x + _F(0.5)) / s
    raise ValueError(mode)
