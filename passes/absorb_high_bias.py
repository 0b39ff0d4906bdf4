"""absorb_high_bias: move the part of a bias that ReLU always passes into the next layer.

Why: CLE divides a layer's output channel i by s_i < 1 for small channels, which
multiplies its bias by 1/s_i; the activation range that int8 must cover then grows with a
large constant offset. If the pre-activation x_i ~ N(beta_i, gamma_i^2) (the BatchNorm
statistics fold_batchnorm recorded), then x_i >= c_i = max(0, beta_i - 3 gamma_i) almost
always (99.87%), and for x_i >= c_i, relu(x_i) = relu(x_i - c_i) + c_i. So

    b1 -= c,   b2 += W2 c   (summed over the taps of the next conv; Gemm: W2 @ c)

keeps the float function (Nagel et al. 2019, section 4.1.1) and narrows the activation
range by c. Shifting by a constant also passes unchanged through max pooling, global
average pooling, flatten and average pooling without padding.

Exactness: the identity holds where x_i >= c_i (the 3-sigma assumption) and where the
next conv reads real inputs. A zero-padded border of the next conv would read the
shifted value 0 = (c_i - c_i) where it used to read 0, i.e. a border error of W2 c. So by
default only pairs whose second layer has no padding absorb (1x1 convs, Gemm); with
ctx.options.absorb_padded = True padded convs absorb too, as in the paper, with that
border error (docs/dfq.md measures it).

Needs: graph.meta["bn_stats"] (from fold_batchnorm, kept current by equalize_cross_layer);
pairs found like CLE (equalize_cross_layer.find_links) whose path is exactly a ReLU
(act_min 0, act_max inf): run after CLE, which turns equalized ReLU6 into ReLU.
Breaks: activation ranges (calibrate afterwards). Updates bn_stats beta of the first
layer (beta -= c) so data-free bias correction sees the shifted distribution.
"""
from __future__ import annotations

import numpy as np

from edgeq.annotations import bn_stats_of
from edgeq.ir import Graph
from edgeq.ops import clamp_of, holds
from edgeq.passctx import PassContext
from edgeq.passes.equalize_cross_layer import Link, find_links

PASS = "absorb_high_bias"


def weights_times_input(W: np.ndarray, c: np.ndarray, group: int = 1) -> np.ndarray:
    """The change of every output channel when input channel i is shifted by c_i
    (all taps see it): Conv [Co, Ci/g, kH, kW] with groups, or Gemm [Co, K]."""
    co, cig = W.shape[0], W.shape[1]
    Wg = W.reshape(group, co // group, cig, -1).sum(axis=3)   # [g, Co/g, Ci/g]
    return np.einsum("gok,gk->go", Wg, c.reshape(group, cig)).reshape(co)


def _shift_passes_path(link: Link, graph: Graph) -> bool:
    """Every node between the layers passes the shift c on unchanged: the link's own
    activation (the ReLU the identity is about), or an op declared to commute with a
    per-channel shift (a padded average pool does not: it mixes in zeros that do not shift)."""
    return all(clamp_of(n) is not None or holds("channel_shift_commutes", n, graph) for n in link.path)


def absorb_high_bias(graph: Graph, ctx: PassContext) -> Graph:
    padded_ok = ctx.options.absorb_padded
    for link in find_links(graph):
        first, second = link.first, link.second
        if not link.relu or not _shift_passes_path(link, graph):
            continue
        stats = bn_stats_of(graph, first)
        if stats is None:
            ctx.record(PASS, layer=first.name, skipped="no BatchNorm statistics")
            continue
        padded = second.op == "Conv" and any(second.attr("pads", [0]))
        if padded and not padded_ok:
            continue
        gamma = np.abs(np.asarray(stats["gamma"], np.float64))
        beta = np.asarray(stats["beta"], np.float64)
        c = np.maximum(0.0, beta - 3.0 * gamma)
        if not np.any(c > 0):
            continue
        b1 = graph.tensors[first.inputs[2]]
        b2 = graph.tensors[second.inputs[2]]
        W2 = graph.const(second.inputs[1]).astype(np.float64)
        group = int(second.attr("group", 1))
        b1.data = (b1.data.astype(np.float64) - c).astype(b1.data.dtype)
        b2.data = (b2.data.astype(np.float64)
                   + weights_times_input(W2, c, group)).astype(b2.data.dtype)
        stats["beta"] = (beta - c).tolist()  # lists: Graph.meta is saved as JSON
        ctx.record(PASS, layer=first.name, into=second.name, channels=int(np.sum(c > 0)),
                   bias_shift_max=float(c.max()), bias_shift_mean=float(c.mean()),
                   approximate_border=bool(padded))
    return graph
