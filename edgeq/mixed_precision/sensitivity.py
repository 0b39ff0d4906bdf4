"""Per-layer, per-bit-width sensitivity: what it costs to store one layer's weights in b bits.

Two measures, both additive over layers so the ILP can sum them:

- "hawq" (HAWQ-V3): mean Hessian trace of the self-KL loss (hessian.py) times the weight
  perturbation ||Q_b(W) - W||^2, i.e. the second-order term of the loss change when only
  that layer is quantized (Tr(H)/n stands in for the layer's curvature along the noise).
  With rounding="gptq" the perturbation is the GPTQ-rounded layer's (edgeq/round_weights.py)
  and is measured in the metric of the layer's inputs, K tr(dW H_x dW^T) / tr(H_x) with
  H_x = E[x x^T] per group: GPTQ moves the error into input directions that carry little
  energy, which the plain ||dW||^2 would miss (it even grows). For isotropic inputs
  (H_x = c I) the two are the same, so this is HAWQ's measure where HAWQ's assumption holds.
- "measured": quantize only that layer's weights to b bits (fake quantization, everything
  else float) and measure the output noise energy mean((y_b - y)^2) on the calibration
  inputs; its SQNR is reported too. Costs one forward pass per layer and bit-width. With
  rounding="gptq" the layer is rounded the way the compiler will round it below 8 bits
  (edgeq/round_weights.py, on its float inputs), so the ILP prices the error it will get:
  GPTQ shrinks the 4-bit error of a wide pointwise conv several times more than that of a
  3x3 depthwise conv, which nearest-rounding sensitivities cannot see.

A cheaper bit-width is never scored less sensitive than a wider one (s[4] >= s[8]):
estimator noise must not make the ILP prefer fewer bits for free.
"""
from __future__ import annotations

import numpy as np

from edgeq.floatexec.executor import run_float
from edgeq.ir import Graph
from edgeq.mixed_precision.hessian import layer_hessian_traces
from edgeq.mixed_precision.layers import Layer
from edgeq.progress import progress_bar as _bar
from edgeq.quantization.gptq import gptq_layer, layer_groups, layer_hessians, output_energy
from edgeq.quantization.weights import fake_quantize_weights


def _monotone(s: dict[int, float]) -> dict[int, float]:
    out, worst = {}, 0.0
    for b in sorted(s, reverse=True):  # widest first
        worst = max(worst, s[b])
        out[b] = worst
    return out


def perturbation(graph: Graph, layer: Layer, bits: int, per_channel: bool) -> float:
    W = np.asarray(graph.const(layer.weight), np.float64)
    return float(((fake_quantize_weights(W, bits, per_channel).astype(np.float64) - W) ** 2).sum())


def hawq_sensitivity(graph: Graph, feeds: dict[str, np.ndarray], layers: list[Layer],
                     bits: tuple[int, ...] = (4, 8), per_channel: bool = True, iters: int = 16,
                     batch: int = 32, progress: bool = False,
                     rounding: str = "nearest") -> tuple[dict, dict[str, float]]:
    """({layer: {bits: sensitivity}}, {layer: Hessian trace})."""
    n = len(next(iter(feeds.values())))
    with _bar(f"Hessian traces (Hutchinson, {iters} probes)", n, progress) as step:
        traces = layer_hessian_traces(graph, feeds, [l.weight for l in layers], iters=iters,
                                      batch=batch, progress=step)
    # The true block traces are >= 0 (the self-KL Hessian is Gauss-Newton, PSD); a negative
    # estimate is a trace below the estimator's noise (cross-block terms v_i H_ij v_j). Scoring
    # it 0 would make that layer free to drop to int4, so it gets the smallest positive
    # per-weight estimate among the layers instead: small, never free.
    mean = np.array([float(t) / l.params for l, t in zip(layers, traces)])
    floor = float(mean[mean > 0].min()) if (mean > 0).any() else 1.0
    perturb = (lambda l, b: perturbation(graph, l, b, per_channel)) if rounding != "gptq" or not per_channel \
        else _input_metric_perturbation(graph, feeds, layers)
    sens = {}
    for l, m in zip(layers, mean):
        mean_tr = float(m) if m > 0 else floor
        sens[l.name] = _monotone({b: mean_tr * perturb(l, b) for b in bits})
    return sens, {l.name: float(t) for l, t in zip(layers, traces)}


def measured_sensitivity(graph: Graph, feeds: dict[str, np.ndarray], layers: list[Layer],
                         bits: tuple[int, ...] = (4, 8), per_channel: bool = True,
                         progress: bool = False, rounding: str = "nearest") -> tuple[dict, dict[str, float]]:
    """({layer: {bits: output noise energy}}, {layer: SQNR dB at min(bits)})."""
    rounded = _rounder(graph, feeds, layers, per_channel, rounding)
    out = graph.outputs[0]
    ref = run_float(graph, feeds)[out].astype(np.float64)
    power = float((ref ** 2).mean())
    sens, sqnr = {}, {}
    with _bar("measured sensitivity (one layer at a time)", len(layers) * len(bits), progress) as step:
        for l in layers:
            t = graph.tensors[l.weight]
            orig = t.data
            s = {}
            try:
                for b in bits:
                    t.data = rounded(l, orig, b)  # swap in place, restored below
                    y = run_float(graph, feeds)[out].astype(np.float64)
                    s[b] = float(((y - ref) ** 2).mean())
                    step()
            finally:
                t.data = orig
            sens[l.name] = _monotone(s)
            noise = s[min(bits)]
            sqnr[l.name] = float(10 * np.log10(power / noise)) if noise > 0 else float("inf")
    return sens, sqnr


def _rounder(graph: Graph, feeds, layers: list[Layer], per_channel: bool, rounding: str,
             hessians: dict | None = None):
    """(layer, W, bits) -> W rounded as the compiler will: GPTQ below 8 bits (per-channel,
    rounding="gptq"), else round to nearest."""
    nearest = lambda l, W, b: fake_quantize_weights(W, b, per_channel)  # noqa: E731
    if rounding != "gptq" or not per_channel:
        return nearest
    if hessians is None:
        hessians = layer_hessians(graph, feeds, [l.name for l in layers])
    nodes = {n.name: n for n in graph.nodes}

    def rounded(l: Layer, W, b: int):
        if b >= 8:
            return nearest(l, W, b)
        Q, _ = gptq_layer(np.asarray(W, np.float64), hessians[l.name], b, layer_groups(nodes[l.name]))
        return Q.astype(np.float32)
    return rounded


def _input_metric_perturbation(graph: Graph, feeds, layers: list[Layer]):
    """(layer, bits) -> K tr(dW H_x dW^T) / tr(H_x), summed over groups, for the weights
    rounded as the compiler will (GPTQ below 8 bits); see the module doc."""
    hessians = layer_hessians(graph, feeds, [l.name for l in layers])
    rounded = _rounder(graph, feeds, layers, True, "gptq", hessians)

    def perturb(l: Layer, b: int) -> float:
        W = np.asarray(graph.const(l.weight), np.float64)
        H = hessians[l.name]
        G, K = H.shape[0], H.shape[1]
        dW = (np.asarray(rounded(l, W, b), np.float64) - W).reshape(G, -1, K)
        energy = output_energy(dW, H)
        return float(np.sum(K * energy / np.maximum(np.einsum("gkk->g", H), 1e-30)))
    return perturb
