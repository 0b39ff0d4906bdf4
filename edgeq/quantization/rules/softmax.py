"""Softmax -> QSoftmax (TFLite int8 SOFTMAX): output scale 1/256, zero point -128.

The output parameters are fixed rather than calibrated: softmax lies in [0, 1], and
1/256 with zp -128 is what TFLite's kernel produces (so the export is byte-identical).
The input-side constants (input_mult, input_left_shift, diff_min) come from
`edgeq.intref.softmax.softmax_params`, the same helper the integer kernel is tested with.
"""
from __future__ import annotations

from edgeq.errors import EdgeqError
from edgeq.ir import QParams
from edgeq.ops import decl_of, implements
from edgeq.quantization.rules.common import QuantContext, scalar
from edgeq.reference.softmax import softmax_params

SOFTMAX_OUT = (1.0 / 256.0, -128)


@implements("quantize", "Softmax", emits=("QSoftmax",))
def quantize_softmax(ctx: QuantContext, node) -> None:
    x = ctx.int8_input(node.inputs[0])
    qx = ctx.qp(x)
    rank = len(ctx.fg.tensors[node.inputs[0]].shape)
    axis = int(node.attr("axis", rank - 1))
    problem = decl_of(node).axis_problem(axis % rank, rank)  # the declaration's axis rule
    if problem:
        raise EdgeqError(f"Softmax node {node.name!r}: {problem}", "transpose so that softmax runs over the last axis")
    beta = 1.0
    try:
        params = dict(softmax_params(scalar(qx.scale), beta))
    except ValueError as e:
        raise EdgeqError(f"Softmax node {node.name!r}: {e}",
                         "calibrate with data that gives the softmax input a real range") from None
    qy = QParams(SOFTMAX_OUT[0], SOFTMAX_OUT[1])
    y = ctx.add_act(node.outputs[0], qy)
    ctx.add_node("QSoftmax", node.name, [x], [y], {"axis": rank - 1, "beta": beta, **params})
    ctx.record(node.name, op="Softmax", in_scale=scalar(qx.scale), out_scale=SOFTMAX_OUT[0])
