"""Where each tensor's values sit in its buffer, so NHWC kernels and NCHW ones can meet.

A `Layout(view, perm)` says: buffer = ravel(transpose(reshape(logical, view), perm)).
The graph's own (ONNX, NCHW) order is `Layout(shape, identity)`; the TVM kernels store
images NHWC, `Layout(shape, (0, 2, 3, 1))`. Two layouts are interchangeable when they put
every logical element at the same buffer position (`same_order`), which also makes
e.g. NCHW and NHWC equal for C = 1 or H = W = 1. What moves no data:

- a reshape keeps its input's view and perm (only the logical shape changes);
- a transpose of a tensor stored without a reshape composes the permutations (so an
  NHWC graph input followed by Transpose(0, 3, 1, 2) is already NHWC for the conv);
- an elementwise op's output takes its input's layout.

Anything else is a copy through a table of positions (`gather_table`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Layout:
    view: tuple[int, ...]
    perm: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.view, dtype=np.int64))

    def order(self) -> np.ndarray:
        """The logical (row-major) index of the element at each buffer position."""
        return _order(self.view, self.perm)

    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm)))


@lru_cache(maxsize=256)
def _order(view: tuple[int, ...], perm: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(view, dtype=np.int64)), dtype=np.int64).reshape(view).transpose(perm).ravel()


def identity(shape) -> Layout:
    shape = tuple(int(d) for d in shape)
    return Layout(shape, tuple(range(len(shape))))


def channels_last(shape) -> Layout:
    """NHWC for [N, C, H, W], NLC for [N, C, L] (what the conv and pool kernels read)."""
    shape = tuple(int(d) for d in shape)
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    return Layout(shape, perm)


def same_order(a: Layout, b: Layout) -> bool:
    if a == b:
        return True
    if a.size != b.size:
        return False
    return bool(np.array_equal(a.order(), b.order()))


def gather_table(src: Layout, dst: Layout) -> np.ndarray:
    """int32 table with dst_buffer[i] = src_buffer[table[i]]."""
    position = np.empty(src.size, np.int64)
    position[src.order()] = np.arange(src.size)
    return position[dst.order()].astype(np.int32)


def after_reshape(src: Layout, out_shape) -> Layout:
    return Layout(src.view, src.perm) if not src.is_identity() else identity(out_shape)


def after_transpose(src: Layout, in_shape, perm) -> Layout | None:
    """Layout of x.transpose(perm) left in x's buffer, or None when x's view is not its
    own shape (a reshape in between: then the data must move)."""
    if tuple(src.view) != tuple(int(d) for d in in_shape):
        return None
    inverse = np.argsort(perm)
    out_shape = tuple(int(in_shape[p]) for p in perm)
    return Layout(out_shape, tuple(int(inverse[q]) for q in src.perm))


def row_permutation(src: Layout, rows: int) -> np.ndarray | None:
    """For a 2-D [rows, K] tensor stored as `src`: the logical column at each stored column
    when every row is stored contiguously in one common column order (a Gemm then takes
    the input as it is, its weight columns permuted), else None."""
    order = src.order().reshape(rows, -1)
    k = order.shape[1]
    cols = order - (np.arange(rows) * k)[:, None]
    if (cols < 0).any() or (cols >= k).any() or not (cols == cols[0]).all():
        return None
    return cols[0]
