"""QPad: constant padding. pads[2*rank] in ONNX order (all begins, then all ends), >= 0.
The new elements get `value` (the quantized pad constant; the quantizer sets it to x_zp
for ONNX's default 0.0), falling back to the `x_zp` attribute, then 0."""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements


@implements("reference", "QPad")
def qpad(node, x, *unused):
    pads = [int(p) for p in node.attr("pads")]
    r = x.ndim
    if len(pads) != 2 * r or min(pads) < 0:
        raise ValueError(f"{node.name}: QPad needs {2 * r} non-negative pads, got {pads}")
    value = int(node.attr("value", node.attr("x_zp", 0)))
    if not -128 <= value <= 127:
        raise ValueError(f"{node.name}: pad value {value} is not int8")
    return np.pad(np.asarray(x, dtype=np.int8), list(zip(pads[:r], pads[r:])),
                  constant_values=np.int8(value))
