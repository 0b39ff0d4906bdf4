"""correct_bias: remove the expected output error that weight quantization introduces.

Why: rounding weights is a biased perturbation of a layer's output whenever its input
mean is not zero (after a ReLU it never is): with dW = W_q - W,

    E[y_q - y] = dW E[x]      (per output channel; for a conv, summed over the taps)

so the quantized layer's outputs drift by a constant per channel, and the drifts add up
through a deep network (MobileNetV2 with per-tensor weights: the mean error is the main
error). Subtracting it from the float bias (b -= dW E[x]) makes the quantized layer
unbiased (Nagel et al. 2019, section 4.2).

E[x] comes from one of two places (ctx.options.bias_correction_mode: "auto",
"empirical" or "data-free"; auto = empirical when ctx.calib is given):
- empirical: the mean input map of the layer over the calibration samples, measured by
  float execution (edgeq.float_exec.run_float). The map is kept per position, so the
  correction includes the zero-padded borders exactly (conv is linear: E[conv(x, dW)] =
  conv(E[x], dW)), then averaged over output positions.
- data-free: per-channel means from the BatchNorm statistics of the layer that produced
  the input: x = clamp(N(beta, gamma^2), act_min, act_max), whose mean is the
  clipped-normal formula below (the paper's ReLU case, generalized to ReLU6); it
  propagates through Add, pooling, flatten and Concat. Padding is ignored, as in the
  paper. Layers whose input mean cannot be derived (the network input) are left alone.

dW must be exactly the rounding the quantizer will apply, so it comes from
edgeq.quantize_weights.fake_quantize_weights with the compile options
(ctx.options.weight_granularity and the node's bits from ctx.options.weight_bits).

Needs: the final float weights (run last among float passes: any later weight rewrite
invalidates the correction), graph.meta["bn_stats"] for data-free mode.
Breaks: float outputs, on purpose (by -dW E[x] per channel); the float graph is now tuned
to one weight quantization (granularity, bits).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from edgeq.annotations import bn_stats_of
from edgeq.floatexec.executor import run_float
from edgeq.ir import Graph, Node
from edgeq.ops import clamp_of, holds
from edgeq.passctx import PassContext
from edgeq.passes.absorb_high_bias import weights_times_input
from edgeq.quantization.weights import fake_quantize_weights

PASS = "correct_bias"
_CHUNK = 16  # calibration samples per float run: bounds memory on 224x224 models


def clipped_normal_mean(mu, sigma, lo=-np.inf, hi=np.inf) -> np.ndarray:
    """E[clip(X, lo, hi)] for X ~ N(mu, sigma^2), elementwise:
    lo Phi(a) + hi (1 - Phi(b)) + mu (Phi(b) - Phi(a)) + sigma (phi(a) - phi(b)),
    a = (lo - mu) / sigma, b = (hi - mu) / sigma. ReLU: lo = 0, hi = inf."""
    mu = np.asarray(mu, np.float64)
    sigma = np.abs(np.asarray(sigma, np.float64))
    safe = np.where(sigma > 0, sigma, 1.0)
    a, b = (lo - mu) / safe, (hi - mu) / safe
    pdf = lambda z: np.exp(-0.5 * np.minimum(z * z, 1e4)) / np.sqrt(2 * np.pi)  # noqa: E731
    lo_term = lo * ndtr(a) if np.isfinite(lo) else 0.0
    hi_term = hi * (1.0 - ndtr(b)) if np.isfinite(hi) else 0.0
    mean = lo_term + hi_term + mu * (ndtr(b) - ndtr(a)) + safe * (pdf(a) - pdf(b))
    return np.where(sigma > 0, mean, np.clip(mu, lo, hi))


def _clamp_of(node: Node) -> tuple[float, float]:
    """An activation's clamp, or a layer's fused one."""
    c = clamp_of(node)
    return c if c is not None else (float(node.attr("act_min", -np.inf)), float(node.attr("act_max", np.inf)))


class _DataFreeMeans:
    """Per-channel E[x] of tensors, derived from BN statistics (None when unknown)."""

    def __init__(self, graph: Graph):
        self.g = graph
        self.producer = graph.producer_map()
        self.memo: dict[str, np.ndarray | None] = {}

    def __call__(self, t: str) -> np.ndarray | None:
        if t not in self.memo:
            self.memo[t] = self._mean(t)
        return self.memo[t]

    def _layer(self, n: Node, lo: float, hi: float) -> np.ndarray | None:
        stats = bn_stats_of(self.g, n)
        if stats is not None:
            return clipped_normal_mean(stats["beta"], stats["gamma"], lo, hi)
        if lo == -np.inf and hi == np.inf:  # no BN, linear: E[y] = W E[x] + b
            m = self(n.inputs[0])
            if m is None:
                return None
            W = self.g.const(n.inputs[1]).astype(np.float64)
            group = int(n.attr("group", 1))
            return weights_times_input(W, m, group) + self.g.const(n.inputs[2])
        return None

    def _mean(self, t: str) -> np.ndarray | None:
        n = self.producer.get(t)
        if n is None:
            return None  # a graph input: nothing is known about it without data
        if holds("weighted", n):
            return self._layer(n, *_clamp_of(n))
        if clamp_of(n) is not None:
            p = self.producer.get(n.inputs[0])
            if p is None or not holds("weighted", p):
                return None
            (l1, h1), (l2, h2) = _clamp_of(p), _clamp_of(n)
            return self._layer(p, max(l1, l2), min(h1, h2))
        if holds("channel_scale_commutes", n, self.g):
            # the per-channel mean passes through (MaxPool raises it a little; the paper's
            # formula ignores pooling too)
            return self(n.inputs[0])
        if n.op == "Add" and _clamp_of(n) == (-np.inf, np.inf):  # E[a + b] = E[a] + E[b]
            parts = [self.g.const(i) if self.g.const(i) is not None else self(i) for i in n.inputs]
            if any(p is None for p in parts):
                return None
            flat = [np.asarray(p, np.float64).reshape(-1) for p in parts]
            if any(f.size not in (1, self.g.tensors[t].shape[1]) for f in flat):
                return None  # a constant that varies along H or W: not a per-channel mean
            return flat[0] + flat[1]
        if n.op == "Concat" and int(n.attr("axis", 1)) == 1:
            parts = [self(i) for i in n.inputs]
            return None if any(p is None for p in parts) else np.concatenate(parts)
        return None


def _batched_feeds(calib: list[dict[str, np.ndarray]], size: int):
    for i in range(0, len(calib), size):
        chunk = calib[i:i + size]
        yield {k: np.concatenate([s[k] for s in chunk]) for k in chunk[0]}


def empirical_input_means(graph: Graph, calib: list[dict[str, np.ndarray]],
                          layers: list[Node]) -> dict[str, np.ndarray]:
    """Mean input map (per position: [C, H, W], Gemm [K]) of every layer over the samples,
    accumulated chunk by chunk (all of MobileNetV2's layer inputs for 512 samples at
    224x224 would not fit in memory)."""
    names = sorted({n.inputs[0] for n in layers})
    sums: dict[str, np.ndarray] = {}
    count = 0
    for feeds in _batched_feeds(calib, _CHUNK):
        outs = run_float(graph, feeds, outputs=names)
        for name in names:
            s = np.asarray(outs[name], np.float64).sum(axis=0)
            sums[name] = sums[name] + s if name in sums else s
        count += len(next(iter(feeds.values())))
    return {k: v / count for k, v in sums.items()}


def _conv_error_mean(node: Node, dW: np.ndarray, mean_map: np.ndarray) -> np.ndarray:
    """Mean over output positions of conv(E[x], dW): the exact expected error, borders
    included."""
    import torch
    x = torch.from_numpy(mean_map[None])
    t, l, b, r = (int(p) for p in node.attr("pads", [0, 0, 0, 0]))
    x = torch.nn.functional.pad(x, (l, r, t, b))
    y = torch.nn.functional.conv2d(x, torch.from_numpy(dW), stride=tuple(node.attr("strides", [1, 1])),
                                   dilation=tuple(node.attr("dilations", [1, 1])),
                                   groups=int(node.attr("group", 1)))
    return y[0].mean(dim=(1, 2)).numpy()


def correct_bias(graph: Graph, ctx: PassContext) -> Graph:

    per_channel = ctx.options.weight_granularity != "per-tensor"
    mode = ctx.options.bias_correction_mode
    if mode == "auto":
        mode = "empirical" if ctx.calib else "data-free"
    layers = [n for n in graph.nodes if holds("weighted", n)
              and graph.const(n.inputs[1]) is not None and graph.const(n.inputs[2]) is not None]
    if mode == "empirical":
        if not ctx.calib:
            raise ValueError("empirical bias correction needs ctx.calib")
        maps = empirical_input_means(graph, ctx.calib, layers)
    else:  # all means first, from the uncorrected graph (linear propagation reads biases)
        df_mean = _DataFreeMeans(graph)
        maps = {n.inputs[0]: df_mean(n.inputs[0]) for n in layers}
    for n in layers:
        W = graph.const(n.inputs[1]).astype(np.float64)
        dW = fake_quantize_weights(W, ctx.options.bits_for(n.name), per_channel).astype(np.float64) - W
        m = maps[n.inputs[0]]
        if mode == "empirical":
            eps = _conv_error_mean(n, dW, m) if n.op == "Conv" else dW @ m.reshape(-1)
        else:
            if m is None:
                ctx.record(PASS, layer=n.name, mode=mode, skipped="input mean unknown")
                continue
            group = int(n.attr("group", 1))
            eps = weights_times_input(dW, m, group)
        b = graph.tensors[n.inputs[2]]
        b.data = (b.data.astype(np.float64) - eps).astype(b.data.dtype)
        ctx.record(PASS, layer=n.name, mode=mode, bias_shift_max=float(np.abs(eps).max()),
                   bias_shift_mean=float(np.abs(eps).mean()))
    return graph
