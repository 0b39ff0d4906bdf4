"""QAdd backward: y = a + b in real numbers, under the clamp mask.

G_a = G_b = masked G_y (same mantissas and exponent: the sum's derivative is 1 for both,
whatever the input scales). An input that was broadcast gets the sum over the broadcast
axes (exact: at most 2^31 / 2^14 = 131072 terms, checked), then normalize.
"""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements
from edgeq.reference._common import check_int32
from edgeq.training.rules.clamp import inside, mask_bounds, needs_output


def prepare(node, info) -> dict:
    lo, hi = mask_bounds(node)
    return {"lo": lo, "hi": hi, "keep": [node.outputs[0]] if needs_output(node) else []}


def unbroadcast(m: np.ndarray, shape) -> np.ndarray:
    """Sum m over the axes numpy broadcasting stretched to reach m's shape from `shape`."""
    lead = m.ndim - len(shape)
    m = m.sum(axis=tuple(range(lead))) if lead else m
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and m.shape[i] != 1)
    return m.sum(axis=axes, keepdims=True) if axes else m


@implements("backward", "QAdd", prepare=prepare)
def backward(ctx, node, g):
    c = ctx.consts(node)
    m = g.m
    if c["lo"] is not None or c["hi"] is not None:
        m = np.where(inside(ctx.kept(node.outputs[0]), c["lo"], c["hi"]), m, 0)
    out = {}
    for i in (0, 1):
        if ctx.wants(node, i):
            shape = ctx.shape(node.inputs[i])
            if tuple(shape) == m.shape:
                out[i] = ctx.normalize(m, g.e)
            else:
                acc = unbroadcast(m, shape)
                check_int32(acc, f"{node.name} (broadcast gradient)")
                out[i] = ctx.normalize(acc.reshape(shape), g.e)
    return out
