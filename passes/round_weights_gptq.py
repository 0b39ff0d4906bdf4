"""round_weights_gptq: the weights of every Conv/Gemm below 8 bits GPTQ-rounded on the
calibration data (the method, its measurements and the layer math: edgeq/round_weights.py).

Runs after the bit plan and before the quantizer, on a copy: the float graph stays the
reference for bias correction and model.float.onnx. Leaves the graph as it is (the
quantizer then rounds to nearest) when no layer is below 8 bits, when
ctx.options.weight_rounding is "nearest", or when GPTQ cannot run (no calibration data,
per-tensor weights: a notice says so).

Needs: ctx.calib, ctx.options.weight_bits (an int or the {layer: bits} plan),
weight_granularity, weight_rounding, progress. Breaks: nothing the quantizer needs; the
rounded weights lie on per-channel grids the quantizer keeps (quantize_weights).
Leaves: graph.meta["gptq"], each layer's output error before and after.
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import Graph
from edgeq.passctx import PassContext
from edgeq.quantization.quantize import weight_bits_per_layer
from edgeq.quantization.gptq import LIMIT, chunks, gptq_layer, hessian, layer_groups, sequential_inputs


def round_weights_gptq(graph: Graph, ctx: PassContext) -> Graph:
    opts = ctx.options
    low = [n for n, b in weight_bits_per_layer(graph, opts.weight_bits).items() if b < 8]
    if not low or opts.weight_rounding == "nearest":
        return graph
    if not ctx.calib or opts.weight_granularity != "per-channel":
        why = "no calibration data" if not ctx.calib else "per-tensor weights"
        ctx.notice(f"{len(low)} layer(s) below 8 bits are rounded to nearest ({why}); GPTQ rounding, "
                   "usually more accurate, needs --calib and per-channel weights")
        return graph
    return gptq_rounded(graph, ctx.feeds(), opts.weight_bits, progress=opts.progress)


def gptq_rounded(graph: Graph, feeds: dict[str, np.ndarray], weight_bits: int | dict,
                 per_channel: bool = True, limit: int = LIMIT, progress: bool = False) -> Graph:
    """The rewrite on explicit arguments: a copy of `graph` with every Conv/Gemm below 8
    bits GPTQ-rounded; graph.meta["gptq"] lists the layers and their output error
    before/after on the calibration data. Per-tensor weights are left to round-to-nearest."""
    bits = weight_bits_per_layer(graph, weight_bits)
    low = {n for n, b in bits.items() if b < 8}
    out = graph.copy()
    if not low or not per_channel or feeds is None:
        return out
    report = {}
    for node, xs in sequential_inputs(out, chunks(graph, feeds, limit), low, progress):
        W = out.const(node.inputs[1]).astype(np.float64)
        Q, err = gptq_layer(W, hessian(node, xs, out), bits[node.name], layer_groups(node))
        out.tensors[node.inputs[1]].data = Q.astype(np.float32)
        report[node.name] = {"bits": bits[node.name], **err}
    out.meta["gptq"] = report
    return out
