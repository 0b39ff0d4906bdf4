"""MaxPool -> QMaxPool; AveragePool, GlobalAveragePool -> QAvgPool.

Both keep the input's parameters on the output (TFLite does the same): max and mean
commute with the affine map q -> s (q - z), so no requantization is needed and the
calibrated range of the output is not used.

QAvgPool divides the raw int8 sum of n taps by n without a division: recip[n], rshift[n]
(index 0 unused) from `edgeq.intref.avgpool.avgpool_recips` (the kernel's own helper, built
on fixedpoint.exact_reciprocal and proven exact for every reachable sum).
"""
from __future__ import annotations

import numpy as np

from edgeq.ops import implements
from edgeq.quantization.rules.common import QuantContext
from edgeq.reference.avgpool import avgpool_recips


def _same_params(ctx: QuantContext, node) -> tuple[str, object]:
    x = ctx.int8_input(node.inputs[0])
    q = ctx.qp(x)
    return x, ctx.add_act(node.outputs[0], q)


@implements("quantize", "MaxPool", emits=("QMaxPool",))
def quantize_maxpool(ctx: QuantContext, node) -> None:
    x, y = _same_params(ctx, node)
    ctx.add_node("QMaxPool", node.name, [x], [y], {
        "kernel": list(node.attr("kernel")), "strides": list(node.attr("strides", [1, 1])),
        "pads": list(node.attr("pads", [0] * 4)), "dilations": list(node.attr("dilations", [1, 1])),
        "act_min": -128, "act_max": 127})


@implements("quantize", "AveragePool", "GlobalAveragePool", emits=("QAvgPool",))
def quantize_avgpool(ctx: QuantContext, node) -> None:
    x, y = _same_params(ctx, node)
    if node.op == "GlobalAveragePool":
        h, w = (int(d) for d in ctx.fg.tensors[node.inputs[0]].shape[2:4])
        kernel, strides, pads, include_pad = [h, w], [1, 1], [0, 0, 0, 0], 0
    else:
        kernel = list(node.attr("kernel"))
        strides = list(node.attr("strides", [1, 1]))
        pads = list(node.attr("pads", [0] * 4))
        include_pad = int(node.attr("count_include_pad", 0))
    recip, rshift = avgpool_recips(int(kernel[0]), int(kernel[1]))
    # x_zp: with count_include_pad the padding taps add x_zp each (padding is real 0.0).
    ctx.add_node("QAvgPool", node.name, [x], [y], {
        "kernel": [int(k) for k in kernel], "strides": strides, "pads": pads,
        "dilations": [1, 1], "count_include_pad": include_pad, "x_zp": int(ctx.qp(x).zero_point),
        "recip": recip, "rshift": rshift, "act_min": -128, "act_max": 127})
    ctx.record(node.name, op=node.op, taps=int(np.prod(kernel)))
