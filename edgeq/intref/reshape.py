"""QReshape: reinterpret the contiguous NCHW buffer with a new shape (Flatten, Squeeze and
Unsqueeze become this). ONNX rules: a 0 keeps the input's dim, one -1 is inferred."""
from __future__ import annotations

import numpy as np

from edgeq.intref import kernel


@kernel("QReshape")
def qreshape(node, x, *unused):
    shape = [int(s) for s in node.attr("shape")]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.ascontiguousarray(x).reshape(shape)
