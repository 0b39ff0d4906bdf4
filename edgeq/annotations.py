"""What `Graph.meta` holds, and the functions that read and write it.

meta is saved with the graph (model.float.onnx / model.q.onnx, as JSON: lists, not arrays),
so it holds facts about the graph, never settings (those are edgeq.options):

- "bn_stats": {tensor: {"gamma", "beta", "mean", "var", "eps"}}, left by fold_batchnorm for
  each folded layer's pre-activation output, which is ~N(beta, gamma^2) per channel. The
  passes that rename that tensor or rescale the layer keep it current (fuse_activation,
  fold_add_into_bias, equalize_cross_layer, absorb_high_bias); data-free ranges and
  data-free bias correction read it. Use the functions below, not the dict.
- "onnx": producer and opset of the imported file (the importer).
- "quant_layers", "quant_options": per-layer facts and the options of the quantizer.
- "bias_correction": the integer bias correction's measurement and decision.
- "gptq": GPTQ rounding's per-layer output errors.
"""
from __future__ import annotations

from typing import Any

import numpy as np

BN_STATS = "bn_stats"


def bn_stats(graph) -> dict[str, dict[str, Any]]:
    """Every layer output's BatchNorm statistics (empty when no BN was folded)."""
    return graph.meta.get(BN_STATS) or {}


def bn_stats_of(graph, node) -> dict[str, Any] | None:
    """The statistics fold_batchnorm left for this layer's (pre-activation) output."""
    stats = bn_stats(graph)
    return stats.get(node.outputs[0], stats.get(node.name))


def set_bn_stats(graph, tensor: str, gamma, beta, mean, var, eps: float) -> None:
    as_list = lambda v: np.asarray(v, np.float64).tolist()  # noqa: E731  (JSON-friendly)
    graph.meta.setdefault(BN_STATS, {})[tensor] = {
        "gamma": as_list(gamma), "beta": as_list(beta), "mean": as_list(mean), "var": as_list(var), "eps": eps}


def move_bn_stats(graph, old: str, new: str) -> dict[str, Any] | None:
    """The layer that wrote `old` now writes `new`: its statistics follow (returned, for a
    pass that also moves the distribution)."""
    stats = graph.meta.get(BN_STATS, {})
    if old not in stats:
        return None
    stats[new] = stats.pop(old)
    return stats[new]
