"""QTranspose: data movement, y = x.transpose(perm); quantization unchanged."""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements


@implements("reference", "QTranspose")
def qtranspose(node, x):
    perm = node.attr("perm")
    perm = list(range(x.ndim))[::-1] if perm is None else [int(p) for p in perm]  # ONNX default
    return np.ascontiguousarray(np.transpose(x, perm))
