"""Data movement backward (exact, no rounding): QReshape reshapes the gradient back,
QTranspose applies the inverse permutation, QPad crops the padding away (the padded
elements are constants, their gradient is dropped), QConcat splits along its axis."""
from __future__ import annotations

import numpy as np

from edgeq.training.gradient import Grad
from edgeq.ops import implements


def _none(node, info) -> dict:
    return {}


@implements("backward", "QReshape", prepare=_none)
def reshape_backward(ctx, node, g):
    return {0: Grad(g.m.reshape(ctx.shape(node.inputs[0])), g.e)} if ctx.wants(node, 0) else {}


@implements("backward", "QTranspose", prepare=_none)
def transpose_backward(ctx, node, g):
    if not ctx.wants(node, 0):
        return {}
    perm = node.attr("perm")
    perm = list(range(g.m.ndim))[::-1] if perm is None else [int(p) for p in perm]
    return {0: Grad(np.ascontiguousarray(np.transpose(g.m, np.argsort(perm))), g.e)}


@implements("backward", "QPad", prepare=_none)
def pad_backward(ctx, node, g):
    if not ctx.wants(node, 0):
        return {}
    pads = [int(p) for p in node.attr("pads")]
    r = g.m.ndim
    index = tuple(slice(b, g.m.shape[i] - e) for i, (b, e) in enumerate(zip(pads[:r], pads[r:])))
    return {0: Grad(np.ascontiguousarray(g.m[index]), g.e)}


@implements("backward", "QConcat", prepare=_none)
def concat_backward(ctx, node, g):
    axis = int(node.attr("axis", 0)) % g.m.ndim
    out, start = {}, 0
    for i, name in enumerate(node.inputs):
        size = ctx.shape(name)[axis]
        if ctx.wants(node, i):
            out[i] = Grad(np.ascontiguousarray(np.take(g.m, range(start, start + size), axis=axis)), g.e)
        start += size
    return out
