"""equalize_cross_layer: cross-layer equalization (CLE), Nagel et al. 2019, section 4.1.

Why: with per-tensor weight quantization one step size serves every output channel, so a
layer whose channel ranges differ by 100x (MobileNetV2's depthwise convs) rounds its
small channels to almost nothing. For two layers joined by a positively scale-equivariant
function f (f(s x) = s f(x) for s > 0: ReLU, identity, max/average pooling), scaling
output channel i of the first by 1/s_i and input channel i of the second by s_i leaves the
network function unchanged. Choosing s_i = sqrt(r1_i / r2_i) (r1_i: range of the first
layer's output channel i, r2_i: range of the second's input channel i) makes both ranges
sqrt(r1_i r2_i): equal across the pair, which maximizes the total per-channel precision.

Pairs form chains (Conv -> depthwise Conv -> Conv in MobileNetV2); a layer in the middle
is scaled from both sides, so a chain is swept pair by pair until the scales stop changing.
Grouped and depthwise convs: input channel i of a conv with `group` g only meets the
output channels of its group; a depthwise layer's channel i is both its input and output
channel, and the generic grouped arithmetic below handles that without a special case.

ReLU6 (Clip 0..6) is not scale-equivariant: clip(x/s, 0, 6) != clip(x, 0, 6)/s. Keeping it
exactly for any s would need a per-channel clamp (6/s_i) that the integer kernels do not
have. ctx.options.cle_relu6:
- "bounded" (default): keep ReLU6 and limit each channel's scale to the interval where
  the per-tensor clamp stays exact (see _relu6_bounds; needs BN statistics, pairs without
  them fall back to "relu"). Measured best on MobileNetV2 (docs/dfq.md).
- "relu": the paper's choice, the clamps of equalized pairs become ReLU; this changes the
  float function and widens activation ranges.
- "skip": ReLU6 pairs are not equalized.

Needs: the canonical float graph (docs/float_graph.md), ideally after fold_batchnorm (the
weights CLE rescales must be the folded ones) and fuse_activation (fused act_min/act_max
or separate Relu/Clip nodes both work). Weight and bias tensors must not be shared.
Breaks: activation ranges of every equalized tensor (calibrate afterwards); float outputs
where ReLU6 became ReLU ("relu"), or where a "bounded" channel's value exceeds its 3-sigma
estimate and the moved clamp lets it through. Keeps graph.meta["bn_stats"] consistent (gamma and beta of a
rescaled layer are divided by s_i), which absorb_high_bias and correct_bias read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.annotations import bn_stats_of
from edgeq.ir import Graph, Node
from edgeq.ops import clamp_of, holds
from edgeq.passctx import PassContext

PASS = "equalize_cross_layer"
_TINY = 1e-12  # a channel range below this is dead: leave its scale at 1


@dataclass
class Link:
    """Two layers whose joining path is (or can be made) positively scale-equivariant."""
    first: Node
    second: Node
    path: list[Node]        # nodes strictly between (activation nodes, pooling, flatten)
    clamp: tuple[float, float]  # the combined activation clamp on the path
    relu6: bool             # an upper clamp is on the path (not scale-equivariant as is)

    @property
    def relu(self) -> bool:
        """ReLU (and nothing clamping above) between the layers."""
        return self.clamp == (0.0, np.inf)


def _fused_clamp(node: Node) -> tuple[float, float]:
    return float(node.attr("act_min", -np.inf)), float(node.attr("act_max", np.inf))


def _weights_private(graph: Graph, node: Node, users: dict[str, list[Node]]) -> bool:
    w, b = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else ""
    return (graph.const(w) is not None and graph.const(b) is not None
            and len(users.get(w, [])) == 1 and len(users.get(b, [])) == 1)


def in_channels(graph: Graph, node: Node) -> int:
    w = graph.const(node.inputs[1])
    return w.shape[1] * int(node.attr("group", 1))


def find_links(graph: Graph) -> list[Link]:
    """Every (first, second) layer pair joined by a path CLE may scale through."""
    users = graph.consumer_map()
    outputs = set(graph.outputs)
    links = []
    for first in graph.nodes:
        if not holds("weighted", first) or not _weights_private(graph, first, users):
            continue
        lo, hi = _fused_clamp(first)
        path, t = [], first.outputs[0]
        while True:
            readers = users.get(t, [])
            if t in outputs or len(readers) != 1:
                break  # a fan-out (residual Add, graph output) would see the scaling
            n = readers[0]
            if holds("weighted", n) and n.inputs[0] == t:
                equivariant = lo == 0.0 or (lo == -np.inf and hi == np.inf)
                if (_weights_private(graph, n, users) and equivariant
                        and in_channels(graph, n) == graph.const(first.inputs[1]).shape[0]):
                    links.append(Link(first, n, path, (lo, hi), hi != np.inf))
                break
            c = clamp_of(n)
            if c is not None:
                lo, hi = max(lo, c[0]), min(hi, c[1])
            elif not holds("channel_scale_commutes", n, graph):
                break
            path.append(n)
            t = n.outputs[0]
    return links


def chains(links: list[Link]) -> list[list[Link]]:
    """Group links into maximal chains first -> second -> third ... (each layer has one
    producer, and a first layer has a single reader, so chains never branch)."""
    by_first = {id(l.first): l for l in links}
    seconds = {id(l.second) for l in links}
    out = []
    for l in links:
        if id(l.first) in seconds:
            continue  # not a chain head
        chain = [l]
        while id(chain[-1].second) in by_first:
            chain.append(by_first[id(chain[-1].second)])
        out.append(chain)
    return out


# ---- per-channel weight arithmetic ---------------------------------------------------
def out_ranges(W: np.ndarray) -> np.ndarray:
    return np.abs(W).reshape(W.shape[0], -1).max(axis=1)


def _grouped(W: np.ndarray, group: int) -> np.ndarray:
    """View Conv weights [Co, Ci/g, ...] as [g, Co/g, Ci/g, taps]; Gemm [Co, K] as g = 1."""
    return W.reshape(group, W.shape[0] // group, W.shape[1], -1)


def in_ranges(W: np.ndarray, group: int = 1) -> np.ndarray:
    """Range of every input channel: over the output channels of its group and all taps."""
    return np.abs(_grouped(W, group)).max(axis=(1, 3)).reshape(-1)


def scale_inputs(W: np.ndarray, s: np.ndarray, group: int = 1) -> np.ndarray:
    g = _grouped(W, group)
    return (g * s.reshape(group, 1, -1, 1)).reshape(W.shape)


def scale_outputs(W: np.ndarray, s: np.ndarray) -> np.ndarray:
    return W * s.reshape((-1,) + (1,) * (W.ndim - 1))


def _equalize_link(graph: Graph, link: Link, bounds: dict | None = None) -> float:
    """One CLE step on a pair; returns max |log s| (0 when already equal).

    `bounds` (ReLU6 kept, see _relu6_bounds): id(first) -> [lower, upper, S]: the allowed
    interval of the cumulative scale S per channel and S so far; the step is projected
    onto that interval."""
    f, s_ = link.first, link.second
    W1 = graph.const(f.inputs[1]).astype(np.float64)
    W2 = graph.const(s_.inputs[1]).astype(np.float64)
    g2 = int(s_.attr("group", 1))
    r1, r2 = out_ranges(W1), in_ranges(W2, g2)
    live = (r1 > _TINY) & (r2 > _TINY)
    s = np.where(live, np.sqrt(np.where(live, r1, 1.0) / np.where(live, r2, 1.0)), 1.0)
    if bounds is not None and id(f) in bounds:
        lower, upper, S = bounds[id(f)]
        s = np.clip(S * s, lower, upper) / S
        bounds[id(f)][2] = S * s
    _set(graph, f.inputs[1], scale_outputs(W1, 1.0 / s))
    _set(graph, f.inputs[2], graph.const(f.inputs[2]).astype(np.float64) / s)
    _set(graph, s_.inputs[1], scale_inputs(W2, s, g2))
    stats = bn_stats_of(graph, f)
    if stats is not None:  # the first layer's output distribution is divided by s (JSON lists)
        stats["gamma"] = (np.asarray(stats["gamma"], np.float64) / s).tolist()
        stats["beta"] = (np.asarray(stats["beta"], np.float64) / s).tolist()
    return float(np.max(np.abs(np.log(s)))) if s.size else 0.0


def _relu6_bounds(graph: Graph, link: Link) -> list | None:
    """Keep a clamp clip(x, 0, hi) while scaling (ctx.options.cle_relu6 = "bounded").

    After scaling channel i by 1/S_i (and the next layer by S_i) the pair computes
    S_i clip(x/S_i, 0, hi) = clip(x, 0, hi S_i). That equals clip(x, 0, hi) on every value
    the channel produces iff S_i = 1, or the channel stays below hi (m_i <= hi) and
    S_i >= m_i / hi. m_i = beta_i + 3 gamma_i from the BN statistics (absorb_high_bias's
    3-sigma assumption). The bound also keeps the tensor's activation range within hi,
    so per-tensor activation quantization does not get coarser. Returns [lower, upper,
    S = 1] per channel, or None without statistics."""
    stats = bn_stats_of(graph, link.first)
    if stats is None:
        return None
    hi = link.clamp[1]
    m = np.asarray(stats["beta"], np.float64) + 3.0 * np.abs(np.asarray(stats["gamma"], np.float64))
    saturating = m >= hi
    lower = np.where(saturating, 1.0, np.maximum(m, 0.0) / hi)
    upper = np.where(saturating, 1.0, np.inf)
    return [lower, upper, np.ones_like(m)]


def _set(graph: Graph, name: str, value: np.ndarray) -> None:
    t = graph.tensors[name]
    t.data = np.ascontiguousarray(value.astype(t.data.dtype))


def _drop_relu6(link: Link) -> None:
    """Replace the path's upper clamp by none (ReLU6 -> ReLU), fused or separate."""
    if float(link.first.attr("act_max", np.inf)) != np.inf:
        link.first.attrs["act_max"] = float("inf")
    for n in link.path:
        if n.op == "Clip":
            n.attrs["max"] = float("inf")
    link.clamp, link.relu6 = (link.clamp[0], np.inf), False


def _summary(W: np.ndarray) -> dict:
    r = out_ranges(W.astype(np.float64))
    return {"tensor_range": float(r.max(initial=0.0)), "channel_range_min": float(r.min(initial=0.0)),
            "channel_range_median": float(np.median(r)) if r.size else 0.0}


def equalize_cross_layer(graph: Graph, ctx: PassContext) -> Graph:
    policy, max_iter, tol = ctx.options.cle_relu6, int(ctx.options.cle_max_iter), float(ctx.options.cle_tol)
    links = find_links(graph)
    bounds: dict[int, list] = {}
    if policy == "bounded":  # pairs without BN statistics fall back to "relu"
        for l in links:
            if l.relu6 and (b := _relu6_bounds(graph, l)) is not None:
                bounds[id(l.first)] = b
    if policy == "skip":
        links = [l for l in links if not l.relu6]
    layers = {}
    for l in links:
        for n in (l.first, l.second):
            layers.setdefault(n.name, (n, _summary(graph.const(n.inputs[1]))))
    relu6_replaced = []
    for l in links:
        if l.relu6 and id(l.first) not in bounds:
            relu6_replaced.append(l.first.name)
            _drop_relu6(l)
    for chain in chains(links):
        for it in range(max_iter):
            change = max(_equalize_link(graph, l, bounds) for l in chain)
            if change < tol:
                break
        ctx.record(PASS, chain=[chain[0].first.name] + [l.second.name for l in chain],
                   iterations=it + 1, converged=bool(change < tol))
    for name, (node, before) in layers.items():
        ctx.record(PASS, layer=name, before=before, after=_summary(graph.const(node.inputs[1])))
    if relu6_replaced:
        ctx.record(PASS, relu6_to_relu=relu6_replaced)
    if bounds:
        ctx.record(PASS, relu6_kept=len(bounds), relu6_saturating_channels=int(
            sum(int(np.sum(b[1] == 1.0)) for b in bounds.values())))
    return graph
