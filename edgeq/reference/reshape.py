"""QReshape: reinterpret the contiguous NCHW buffer with a new shape (Flatten, Squeeze and
Unsqueeze become this). ONNX rules: a 0 keeps the input's dim, one -1 is inferred."""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements


@implements("reference", "QReshape")
def qreshape(node, x, *unused):
    shape = [int(s) for s in node.attr("shape")]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if -1 not in shape and x.size != int(np.prod(shape)):
        # A batch of N through a batch-1 graph whose shape has no batch axis to keep with
        # a 0 (a rank-1 result): the run-time batch replaces axis 0, as in float_exec.
        shape[0] = -1
    return np.ascontiguousarray(x).reshape(shape)
