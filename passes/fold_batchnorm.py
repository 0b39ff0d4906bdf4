"""fold_batchnorm: BatchNormalization after Conv/Gemm folded into its weights and bias.

For y = BN(conv(x)), with s = gamma / sqrt(var + eps) per output channel:
W'[c] = W[c] * s[c] and B'[c] = (B[c] - mean[c]) * s[c] + beta[c]; the Conv then
writes the BN's output tensor (so downstream names do not change).

A channel-preserving Reshape between the layer and the BN (the importer's 1-D -> 2-D
lifting) does not block the fold: the Reshape then writes the BN's output.

A BatchNormalization that does not directly follow a foldable producer (a Conv or Gemm
whose output only the BN reads, with no fused clamp) becomes a per-channel
`Mul(x, s)` + `Add(., beta - mean * s)` with constant operands: exactly the same
function, made of ops the quantizer supports. No BatchNormalization is left.

Needs: canonical float graph (Conv/Gemm with constant W and B); run remove_identity
first so Conv -> Identity -> BN pairs are seen.
Breaks: nothing downstream; weights change, so run before calibration and CLE.
Leaves: graph.meta["bn_stats"][conv_output] = {"gamma", "beta", "mean", "var", "eps"}
(float64 lists; gamma/beta = the BN's scale and shift, i.e. the folded layer's
pre-activation output is ~N(beta, gamma^2) per channel).
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError, shown
from edgeq.ir import Graph, Node, Tensor
from edgeq.passctx import PassContext


def fold_batchnorm(graph: Graph, ctx: PassContext) -> Graph:
    folded, rewritten = 0, 0
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        prod = graph.producer_map().get(bn.inputs[0])
        via = None
        if _channel_reshape(graph, prod) and _single_reader(graph, prod.outputs[0]):
            via, prod = prod, graph.producer_map().get(prod.inputs[0])
        if _foldable(graph, prod, bn):
            _fold(graph, prod, bn, via)
            folded += 1
        else:
            _to_mul_add(graph, bn)
            rewritten += 1
    graph.prune()
    ctx.record("fold_batchnorm", folded=folded, as_mul_add=rewritten)
    return graph


def _bn_params(graph: Graph, bn: Node):
    gamma, beta, mean, var = (graph.const(i).astype(np.float64).reshape(-1) for i in bn.inputs[1:5])
    eps = float(bn.attrs["epsilon"])
    return gamma, beta, mean, var, eps


def _single_reader(graph: Graph, name: str) -> bool:
    return len(graph.consumer_map().get(name, [])) == 1 and name not in graph.outputs


def _channel_reshape(graph: Graph, node: Node | None) -> bool:
    """A Reshape keeping (N, C) in axes 0 and 1, like the one the importer puts after a
    1-D convolution (run as 2-D): a per-channel affine map commutes with it."""
    if node is None or node.op != "Reshape":
        return False
    a, b = graph.tensors[node.inputs[0]].shape, graph.tensors[node.outputs[0]].shape
    return len(a) >= 2 and len(b) >= 2 and tuple(a[:2]) == tuple(b[:2])


def _foldable(graph: Graph, prod: Node | None, bn: Node) -> bool:
    if prod is None or prod.op not in ("Conv", "Gemm"):
        return False
    if "act_min" in prod.attrs or "act_max" in prod.attrs:
        return False  # a clamp sits between the layer and the BN
    out = prod.outputs[0]
    readers = graph.consumer_map().get(out, [])
    return (len(readers) == 1 and out not in graph.outputs
            and all(graph.const(i) is not None for i in prod.inputs[1:3]))


def _float32(value: np.ndarray, bn: Node) -> np.ndarray:
    """The folded values in float32; extreme statistics (a variance near 0 with a large
    gamma) can leave float32's range, which no later stage can represent."""
    with np.errstate(all="ignore"):
        data = np.asarray(value).astype(np.float32)
    if not np.all(np.isfinite(data)):
        raise EdgeqError(f"BatchNormalization node '{shown(bn.name)}': folding it gives values beyond float32's range",
                         "check its statistics (a variance near zero with a large scale): re-export the model")
    return data


def _set_const(graph: Graph, node: Node, idx: int, value: np.ndarray, bn: Node) -> None:
    """Write a new weight; copy first if another node shares the old constant."""
    name = node.inputs[idx]
    old = graph.tensors[name]
    shared = sum(i == name for n in graph.nodes for i in n.inputs) > 1
    data = np.ascontiguousarray(_float32(value, bn).astype(old.data.dtype))
    if shared:
        node.inputs[idx] = graph.add_const(name + "_bn", data)
    else:
        old.data = data
        old.shape = tuple(data.shape)


def _fold(graph: Graph, layer: Node, bn: Node, via: Node | None = None) -> None:
    gamma, beta, mean, var, eps = _bn_params(graph, bn)
    s = gamma / np.sqrt(var + eps)
    W = graph.const(layer.inputs[1]).astype(np.float64)
    B = graph.const(layer.inputs[2]).astype(np.float64)
    _set_const(graph, layer, 1, W * s.reshape((-1,) + (1,) * (W.ndim - 1)), bn)
    _set_const(graph, layer, 2, (B - mean) * s + beta, bn)
    writer = via or layer  # the node that now writes the BN's output tensor
    old_out = writer.outputs[0]
    writer.outputs = [bn.outputs[0]]
    graph.nodes.remove(bn)
    del graph.tensors[old_out]
    graph.meta.setdefault("bn_stats", {})[layer.outputs[0]] = {
        "gamma": gamma.tolist(), "beta": beta.tolist(), "mean": mean.tolist(),
        "var": var.tolist(), "eps": eps}


def _to_mul_add(graph: Graph, bn: Node) -> None:
    gamma, beta, mean, var, eps = _bn_params(graph, bn)
    s = gamma / np.sqrt(var + eps)
    rank = len(graph.tensors[bn.inputs[0]].shape)
    shape = (-1,) + (1,) * max(rank - 2, 0)  # broadcast along axis 1
    scale = graph.add_const(f"{bn.name}/scale", _float32(s.reshape(shape), bn))
    shift = graph.add_const(f"{bn.name}/shift", _float32((beta - mean * s).reshape(shape), bn))
    mid = graph.unique_name(f"{bn.outputs[0]}/scaled")
    src = graph.tensors[bn.inputs[0]]
    graph.add_tensor(Tensor(mid, src.shape, "float32"))
    i = graph.nodes.index(bn)
    graph.nodes[i:i + 1] = [Node("Mul", bn.name + "/mul", [bn.inputs[0], scale], [mid]),
                            Node("Add", bn.name + "/add", [mid, shift], [bn.outputs[0]])]
