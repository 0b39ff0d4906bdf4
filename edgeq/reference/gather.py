"""QGather: a copy of x's entries at constant indices along one axis, in the indices'
order (repeats allowed). Slice, Split, ONNX Gather with constant indices, reflect / edge /
wrap padding and nearest-neighbour Resize all become this; parameters unchanged."""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements


@implements("reference", "QGather")
def qgather(node, x, *unused):
    axis = int(node.attr("axis"))
    idx = np.asarray([int(i) for i in node.attr("indices")], dtype=np.int64)
    if not 0 <= axis < x.ndim or idx.size == 0 or idx.min() < 0 or idx.max() >= x.shape[axis]:
        raise ValueError(f"{node.name}: QGather indices must lie in [0, {x.shape[axis] if 0 <= axis < x.ndim else '?'}) "
                         f"along axis {axis} of a rank-{x.ndim} input")
    return np.take(np.asarray(x, dtype=np.int8), idx, axis=axis)
