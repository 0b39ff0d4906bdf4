"""Layouts: how an edgeq (NCHW, ONNX-order) tensor is stored in the TFLite model.

A layout is a permutation `p` with `tflite_array = edgeq_array.transpose(p)`. Rank-4
activations default to NHWC, p = (0, 2, 3, 1); everything else keeps its order. A graph
input that only feeds a layout op (the MLPerf models' Transpose(0,3,1,2) from an NHWC
input, KWS's Reshape) keeps the identity layout, so that op becomes a no-op and the
exported model takes the same NHWC input the original did.
"""
from __future__ import annotations

NHWC = (0, 2, 3, 1)


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def default_layout(rank: int) -> tuple[int, ...]:
    return NHWC if rank == 4 else identity(rank)


def apply(shape, p) -> tuple[int, ...]:
    return tuple(int(shape[i]) for i in p)


def inverse(p) -> tuple[int, ...]:
    inv = [0] * len(p)
    for i, a in enumerate(p):
        inv[a] = i
    return tuple(inv)


def compose(first, then) -> tuple[int, ...]:
    """x.transpose(first).transpose(then) == x.transpose(compose(first, then))."""
    return tuple(first[i] for i in then)


def relative(p_src, q, p_dst) -> tuple[int, ...]:
    """For y = x.transpose(q) with layouts p_src (of x) and p_dst (of y): the permutation r
    with tflite_y = tflite_x.transpose(r)."""
    # tflite_y = x.transpose(compose(q, p_dst)) and x = tflite_x.transpose(inverse(p_src))
    return compose(inverse(p_src), compose(q, p_dst))


def is_memory_noop(shape, p) -> bool:
    """True when transposing an array of `shape` by `p` keeps the bytes in the same order:
    the axes longer than 1 appear in increasing order in p (size-1 axes move freely)."""
    big = [a for a in p if shape[a] != 1]
    return big == sorted(big)


def map_axis(axis: int, rank: int, p) -> int:
    """The TFLite axis holding edgeq axis `axis` under layout p."""
    return tuple(p).index(axis % rank)

