"""Data-free activation ranges: what `edgeq compile` uses when no --calib is given.

How (in this order, per tensor, walking the graph in topological order):
1. A layer whose BatchNormalization was folded (graph.meta["bn_stats"][output], left by
   passes/fold_batchnorm) has pre-activation outputs distributed per channel as
   N(beta_c, gamma_c^2). Its range is [min_c(beta_c - K_STD |gamma_c|),
   max_c(beta_c + K_STD |gamma_c|)], then through the layer's fused clamp
   (act_min/act_max: a fused ReLU makes lo = max(lo, 0)).
2. Ops that only move or select values (declared keeps_range: MaxPool, average pools,
   Reshape, Transpose, Identity; the clamps Relu and Clip; Pad, Concat) map a range they
   got from rule 1 or 2 exactly (interval arithmetic), so a ReLU after a BN layer gets the
   BN-derived range too.
3. Everything else (graph inputs, layers without BN statistics, Add, Sigmoid, ...) takes
   the min/max seen when running the float graph on a synthetic batch of SYNTH_N
   inputs drawn from N(0, 1): the usual range of a standardized input.

This is a guess about the data, and the notice the CLI prints says so.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.annotations import bn_stats
from edgeq.calibration.calibrate import activation_names, calibrate
from edgeq.ir import Graph
from edgeq.ops import clamp_of, holds

K_STD = 4.0
SYNTH_N = 32
SYNTH_SEED = 0
DATA_FREE_NOTICE = (f"no --calib data: using data-free activation ranges (BatchNorm statistics "
                    f"mean ± {K_STD:g}·std where the model had BN, elsewhere a synthetic N(0, 1) input "
                    f"batch); give --calib samples.npy for accurate int8 ranges")

def synthetic_feeds(graph: Graph, n: int = SYNTH_N, seed: int = SYNTH_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((n,) + tuple(graph.tensors[name].shape[1:])).astype(np.float32)
            for name in graph.inputs}


def _bn_range(stats: dict, node) -> tuple[float, float]:
    beta = np.ravel(np.asarray(stats["beta"], dtype=np.float64))
    gamma = np.abs(np.ravel(np.asarray(stats["gamma"], dtype=np.float64)))
    lo, hi = float(np.min(beta - K_STD * gamma)), float(np.max(beta + K_STD * gamma))
    if node is not None:
        lo, hi = _clamp(lo, hi, node.attr("act_min"), node.attr("act_max"))
    return lo, hi


def _clamp(lo, hi, cmin, cmax):
    if cmin is not None and math.isfinite(cmin):
        lo, hi = max(lo, cmin), max(hi, cmin)
    if cmax is not None and math.isfinite(cmax):
        lo, hi = min(lo, cmax), min(hi, cmax)
    return lo, hi


def _propagate(node, ins: list) -> tuple[float, float] | None:
    """Exact range of a value-moving op's output from its inputs' ranges (None: unknown)."""
    if any(r is None for r in ins) or not ins:
        return None
    lo, hi = ins[0]
    if holds("keeps_range", node):
        return lo, hi
    clamp = clamp_of(node)
    if clamp is not None:
        return _clamp(lo, hi, *clamp)
    if node.op == "Pad":
        v = float(node.attr("value", 0.0))
        return min(lo, v), max(hi, v)
    if node.op == "Concat":
        return min(r[0] for r in ins), max(r[1] for r in ins)
    return None


def data_free_ranges(graph: Graph) -> dict[str, tuple[float, float]]:
    synth = calibrate(graph, synthetic_feeds(graph), method="minmax", progress=False)
    bn = bn_stats(graph)
    known: dict[str, tuple[float, float]] = {}  # ranges from rules 1-2
    for node in graph.nodes:
        out = node.outputs[0]
        if out in bn:
            known[out] = _bn_range(bn[out], node)
            continue
        data_ins = [i for i in node.inputs if i and graph.const(i) is None]
        r = _propagate(node, [known.get(i) for i in data_ins])
        if r is not None:
            known[out] = r
    ranges = {n: synth[n] for n in activation_names(graph)}
    ranges.update(known)
    return ranges
