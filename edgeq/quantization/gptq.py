"""GPTQ rounding of low-bit weights: pick each weight's integer so that the layer's output
on the calibration data stays close to float, not the weight itself.

    Q, err = gptq_layer(W, H, bits, groups)          # one layer (the pass: passes/round_weights_gptq.py)

Why: at 4 bits, round-to-nearest leaves every weight up to half of a coarse step off, and
the errors of a layer's K inputs add up in its outputs. Most of that sum can be cancelled:
after one input column is rounded, the columns not yet rounded are nudged to absorb its
error, weighted by how the inputs co-vary on real data (Frantar et al. 2023, "GPTQ", the
closed form of Optimal Brain Quantization with a fixed column order).

How, per Conv/Gemm whose planned bits are below 8, in topological order:
- X: the layer's input on the calibration samples, as im2col columns (K = Ci/g * kH * kW
  rows per group), computed through the layers already rounded before it (float
  activations; the integer stages come later);
- H = X X^T / columns, per group, plus 1% of its mean diagonal (H is rank-deficient when
  the samples give fewer columns than K, e.g. the classifier of a 224x224 model);
- scale per output channel: the clip ratio a in {1, 0.95, ..., 0.6} whose round-to-nearest
  error sum_k H_kk (w_k - a max|W_c| / qmax * q_k)^2 is smallest;
- columns in order of decreasing H_kk ("act order"); column i is rounded to
  q_i = clamp(round_half_even(w_i / s)), and its error moves onto the later columns through
  the upper Cholesky factor U of H^-1: W[:, j] -= (w_i - s q_i) / U_ii * U_ij for j > i.

The result is a copy of the graph whose rounded weights are exactly q * s per channel:
edgeq.quantize_weights recognises such per-channel grids and keeps them, so the quantizer
produces GPTQ's integers and every lowering stays bit-exact with the reference. Layers at
8 bits are left alone (their rounding error is small next to the activations').
"""
from __future__ import annotations

import numpy as np

from edgeq.floatexec.executor import run_node, tlbr_to_torch, to_torch
from edgeq.ir import Graph
from edgeq.ops import macs
from edgeq.progress import progress_bar

# Calibration samples used: H of a wide layer needs many (the 1280-input classifier of a
# 224x224 MobileNetV2 sees one column per image). Measured there, weights-only agreement
# with float on 128 held-out images for one 60% plan: 64 samples 89.1%, 256 samples 91.4%.
LIMIT = 256
MAC_BUDGET = 1e11  # samples x MACs per sample: a 224x224 MobileNetV2 (~300M MACs) gets 256
CHUNK = 16        # samples per float run
MAX_COLUMNS = 65536  # im2col columns per chunk kept for H (spatially subsampled beyond)
DAMP = 0.01
CLIP_RATIOS = np.linspace(1.0, 0.6, 9)


def layer_hessians(graph: Graph, feeds: dict[str, np.ndarray], names, limit: int = LIMIT) -> dict:
    """{layer: H} of the float graph as it is (no layer rounded): what GPTQ would see for
    one layer rounded alone (the measured sensitivity in edgeq/mixed_precision)."""
    return {node.name: hessian(node, xs, graph)
            for node, xs in sequential_inputs(graph, chunks(graph, feeds, limit), set(names), False)}


def chunks(graph: Graph, feeds: dict[str, np.ndarray], limit: int) -> list[dict]:
    """The samples GPTQ uses (at most `limit`, and MAC_BUDGET of work), CHUNK at a time."""
    total = sum(macs(n, graph) for n in graph.nodes)
    n = min(limit, len(next(iter(feeds.values()))), max(CHUNK, int(MAC_BUDGET // max(total, 1))))
    return [{k: np.asarray(v[s:min(s + CHUNK, n)], np.float32) for k, v in feeds.items()}
            for s in range(0, n, CHUNK)]


def layer_groups(node) -> int:
    return int(node.attrs.get("group", 1))  # a Gemm has none


def sequential_inputs(graph: Graph, parts: list[dict], low: set[str], progress: bool):
    """Run the float graph chunk by chunk, node by node; before each node in `low`, yield
    (node, its input per part) so the caller can rewrite its weight first."""
    import torch
    last = {}
    for i, nd in enumerate(graph.nodes):
        for name in nd.inputs:
            last[name] = i
    env = {k: [to_torch(c[k]) for c in parts] for k in graph.inputs}
    todo = sum(nd.name in low for nd in graph.nodes)
    with torch.inference_mode(), progress_bar("GPTQ rounding", todo, progress and todo > 0) as step:
        for i, nd in enumerate(graph.nodes):
            if nd.name in low:
                yield nd, env[nd.inputs[0]]
                step()
            consts = {a: to_torch(graph.const(a)) for a in nd.inputs if a and a not in env}
            env[nd.outputs[0]] = [run_node(nd, [None if not a else env[a][c] if a in env else consts[a]
                                                for a in nd.inputs], graph) for c in range(len(parts))]
            for a in nd.inputs:
                if last.get(a) == i and a in env and a not in graph.outputs:
                    del env[a]


def _columns(node, x, kernel):
    """The layer's input as (groups, K per group, columns) float64, im2col for a Conv."""
    import torch.nn.functional as F
    if node.op == "Gemm":
        return x.double().reshape(x.shape[0], -1).T[None]
    p, g = node.attrs["pads"], int(node.attrs["group"])
    cols = F.unfold(F.pad(x, tlbr_to_torch(p)), kernel_size=tuple(kernel),
                    dilation=tuple(node.attrs["dilations"]), stride=tuple(node.attrs["strides"]))
    n, kk, L = cols.shape  # (N, Ci * kH * kW, positions), channel-major like the weight
    cols = cols.reshape(n, g, kk // g, L).permute(1, 2, 0, 3).reshape(g, kk // g, n * L)
    if cols.shape[2] > MAX_COLUMNS:  # evenly spaced subset: H is an average, not a sum
        idx = np.linspace(0, cols.shape[2] - 1, MAX_COLUMNS).astype(np.int64)
        cols = cols[:, :, idx]
    return cols.double()


def hessian(node, xs, graph: Graph) -> np.ndarray:
    """H = X X^T / columns per group, (groups, K, K) float64."""
    import torch
    kernel = graph.const(node.inputs[1]).shape[2:]
    H, count = None, 0
    for x in xs:
        c = _columns(node, x, kernel)
        h = torch.bmm(c, c.transpose(1, 2))
        H = h if H is None else H + h
        count += c.shape[2]
    return (H / max(count, 1)).numpy()


def gptq_layer(W: np.ndarray, H: np.ndarray, bits: int, groups: int = 1) -> tuple[np.ndarray, dict]:
    """GPTQ-rounded W (same shape, float64, each channel exactly q * s_c) and the layer's
    relative output error on H before (round to nearest at max|W_c| / qmax) and after.
    W: [Co, K...] (Conv [Co, Ci/g, kH, kW], Gemm [Co, K]); H: (groups, K, K)."""
    qmax = (1 << (bits - 1)) - 1
    co = W.shape[0]
    Wg = W.reshape(groups, co // groups, -1).copy()          # (G, R, K)
    G, R, K = Wg.shape
    H0, H = H, H.copy()
    diag = np.einsum("gkk->gk", H)
    dead = diag <= 0                                          # inputs that are always 0
    Wg[np.broadcast_to(dead[:, None, :], Wg.shape)] = 0.0
    for g, k in zip(*np.nonzero(dead)):
        H[g, k, k] = 1.0
    diag = np.einsum("gkk->gk", H)
    s = _clip_scales(Wg, diag, qmax)                          # (G, R)
    W0 = W.reshape(G, R, K)
    before = _output_error(W0, _round(W0, _max_scales(W0, qmax), qmax), H0)

    order = np.argsort(-diag, axis=1, kind="stable")          # act order, per group
    Wp = np.take_along_axis(Wg, order[:, None, :], axis=2)
    Hp = np.take_along_axis(np.take_along_axis(H, order[:, :, None], axis=1), order[:, None, :], axis=2)
    Hp += DAMP * np.mean(np.einsum("gkk->gk", Hp), axis=1)[:, None, None] * np.eye(K)
    U = np.transpose(np.linalg.cholesky(np.linalg.inv(Hp)), (0, 2, 1))  # H^-1 = U^T U, U upper
    Q = np.empty_like(Wp)
    for i in range(K):
        w = Wp[:, :, i]
        q = np.clip(np.round(w / s), -qmax, qmax) * s
        Q[:, :, i] = q
        err = (w - q) / U[:, i, i][:, None]
        Wp[:, :, i + 1:] -= err[:, :, None] * U[:, None, i, i + 1:]
    inv = np.argsort(order, axis=1)
    Qg = np.take_along_axis(Q, inv[:, None, :], axis=2)
    after = _output_error(W0, Qg, H0)
    return Qg.reshape(W.shape), {"output_error_nearest": round(before, 5), "output_error_gptq": round(after, 5)}


def _max_scales(Wg: np.ndarray, qmax: int) -> np.ndarray:
    s = np.max(np.abs(Wg), axis=2) / qmax
    return np.where(s > 0, s, 1.0)


def _round(Wg: np.ndarray, s: np.ndarray, qmax: int) -> np.ndarray:
    return np.clip(np.round(Wg / s[:, :, None]), -qmax, qmax) * s[:, :, None]


def _clip_scales(Wg: np.ndarray, diag: np.ndarray, qmax: int) -> np.ndarray:
    """Per channel, the clipped scale with the smallest H-diagonal-weighted rounding error."""
    base = _max_scales(Wg, qmax)
    best, best_err = base, None
    for a in CLIP_RATIOS:
        s = base * a
        e = np.sum(diag[:, None, :] * (Wg - _round(Wg, s, qmax)) ** 2, axis=2)
        if best_err is None:
            best, best_err = s, e
        else:
            better = e < best_err
            best, best_err = np.where(better, s, best), np.where(better, e, best_err)
    return best


def output_energy(D: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Per group, the energy of the layer's outputs under weights D: ||D X||^2 / columns
    = sum over rows of d H d^T. D: (groups, rows, K), H: (groups, K, K)."""
    return np.einsum("grk,gkm,grm->g", D, H, D)


def _output_error(W: np.ndarray, Q: np.ndarray, H: np.ndarray) -> float:
    """||(W - Q) X||^2 / ||W X||^2 (all groups)."""
    num, den = output_energy(W - Q, H).sum(), output_energy(W, H).sum()
    return float(num / den) if den > 0 else 0.0
