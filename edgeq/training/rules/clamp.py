"""The clamp mask: where a fused activation cut the output, no gradient passes.

QConv, QGemm and QAdd end in `clamp(y, act_min, act_max)`. A bound masks the gradient
(y == bound means the unclamped value was at or beyond it) when it is an activation:
- act_min when act_min > -128 (a fused Relu/Relu6/Clip with its zero above -128) or
  act_min == y_zp (a ReLU whose real 0 sits at -128, the usual case after calibration);
- act_max when act_max < 127 (Relu6, Clip).
A bound equal to the int8 limit for any other reason is the number format's saturation;
the float network has no bound there, so its gradient passes straight through. This
matters for logits: a wrong class saturated at 127 must still be pushed down.
Example: Relu with y_zp = -128 (act_min = -128): y = -128 gets no gradient. Logits with
y_zp = -6, act_min = -128: y = -128 passes its gradient.
"""
from __future__ import annotations

import numpy as np


def mask_bounds(node) -> tuple[int | None, int | None]:
    """(lower, upper) int8 bounds that mask the gradient, None where the bound is the
    format's saturation (compile time)."""
    lo, hi = int(node.attr("act_min", -128)), int(node.attr("act_max", 127))
    y_zp = int(node.attr("y_zp", -129))
    return (lo if lo > -128 or lo == y_zp else None), (hi if hi < 127 else None)


def inside(y: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """True where the gradient passes: strictly inside the masked bounds."""
    keep = np.ones(np.shape(y), dtype=bool)
    if lo is not None:
        keep &= np.asarray(y) > lo
    if hi is not None:
        keep &= np.asarray(y) < hi
    return keep


def needs_output(node) -> bool:
    """True when the rule reads the forward output (for the mask)."""
    lo, hi = mask_bounds(node)
    return lo is not None or hi is not None
