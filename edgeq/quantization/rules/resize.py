"""ResizeBilinear -> QResizeBilinear.

The output keeps the input's parameters (interpolation with weights that sum to one
commutes with the affine map q -> s (q - z), as for pools; TFLite's RESIZE_BILINEAR
requires it too). The per-axis (lo, hi, frac) tables are TFLite's integer positions for the
node's coordinate_transformation_mode (`edgeq.reference.resize.bilinear_table`).
"""
from __future__ import annotations

from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext
from edgeq.reference.resize import bilinear_table


@implements("quantize", "ResizeBilinear", emits=("QResizeBilinear",))
def quantize_resize_bilinear(ctx: QuantContext, node) -> None:
    x = ctx.int8_input(node.inputs[0])
    y = ctx.add_act(node.outputs[0], ctx.qp(x))
    (h, w), (oh, ow) = ctx.fg.tensors[node.inputs[0]].shape[2:4], node.attr("sizes")
    mode = node.attr("coordinate_transformation_mode")
    ctx.add_node("QResizeBilinear", node.name, [x], [y], {
        "y_table": bilinear_table(int(h), int(oh), mode), "x_table": bilinear_table(int(w), int(ow), mode),
        "mode": mode})
