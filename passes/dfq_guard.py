"""dfq_guard: keep the data-free quantization passes only if they measurably help.

Why: with per-tensor weights CLE and bias correction fix a collapse (MobileNetV2: 69% ->
84% top-1 agreement with float), but with per-channel weights the weights are already
fine and the passes only nudge things: CLE's "bounded" ReLU6 policy moves the float
function a little, bias correction removes a weight-rounding bias that per-channel
rounding barely has. The net effect can be negative (docs/dfq.md measured it: fewer
confident images kept on MobileNetV2). So the passes are treated as a proposal that is
measured on the calibration data -- never on evaluation data -- and kept only if it is
not worse there on any of three criteria against the float model:

- output SQNR (all outputs, dB),
- top-1 agreement with the float model (classifier outputs [N, C], C > 1),
- top-1 agreement on the samples where the float top-1 probability is > 0.5.

Both candidates (the graph without the passes, the graph with them) go through the same
stages compile uses afterwards: calibrate (ctx.options.calibration) -> quantize
(ctx.options.weight_granularity / weight_bits) -> the integer
reference (edgeq.intref, the golden semantics every lowering is bit-exact with). The
decision and both candidates' scores are recorded in ctx.log ("dfq_guard").

Every in-order combination of the steps (["CLE + absorption", "bias correction"] by
default: CLE alone, bias correction alone, both) is measured, and the one with the best
SQNR among those not worse than the graph without any step is kept (none if no
combination qualifies). So the result is never worse on the calibration data than the
graph without the passes. Combinations rather than a greedy walk: on MobileNetV2 CLE alone
loses top-1 on the calibration images while CLE followed by bias correction gains, and a
greedy walk drops CLE before bias correction can repair it (docs/dfq.md).

Needs: ctx.calib (without calibration data nothing can be measured: the passes then run
unguarded and the log says so). Cost: one calibration plus one integer-reference run over
the calibration samples per candidate, 2^steps candidates (MobileNetV2 at 224x224, 64
samples: ~1 min each).
Breaks: what the kept passes break.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeq.calibration.calibrate import calibrate
from edgeq.floatexec.executor import run_float
from edgeq.ir import Graph
from edgeq.passctx import PassContext
from edgeq.quantization.quantize import quantize
from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference

PASS = "dfq_guard"
Pass = Callable[[Graph, PassContext], Graph]
_BATCH = 16  # samples per integer-reference call: bounds memory at 224x224


def _float_outputs(graph: Graph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(feeds.values())))
    out = graph.outputs[0]
    return np.concatenate([run_float(graph, {k: v[i:i + _BATCH] for k, v in feeds.items()})[out]
                           for i in range(0, n, _BATCH)])


def _int8_outputs(graph: Graph, feeds: dict[str, np.ndarray], ctx: PassContext) -> np.ndarray:
    ranges = calibrate(graph, feeds, progress=False, options=ctx.options.calibration)
    q = quantize(graph, ranges, weight_granularity=ctx.options.weight_granularity,
                 weight_bits=ctx.options.weight_bits)
    n = len(next(iter(feeds.values())))
    out = q.outputs[0]
    ys = []
    for i in range(0, n, _BATCH):
        qin = quantize_inputs(q, {k: v[i:i + _BATCH] for k, v in feeds.items()})
        ys.append(dequantize_outputs(q, run_reference(q, qin))[out])
    return np.concatenate(ys)


def fidelity(y: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """SQNR (dB) of y against ref and, for [N, C] classifier outputs, top-1 agreement
    overall and on the samples where ref's top-1 softmax probability is > 0.5."""
    y64, r64 = y.astype(np.float64), ref.astype(np.float64)
    err = float(np.sum((y64 - r64) ** 2))
    sig = float(np.sum(r64 ** 2))
    m = {"sqnr": float(10 * np.log10(sig / err)) if err > 0 else float("inf")}
    if ref.ndim == 2 and ref.shape[1] > 1:
        p = np.exp(r64 - r64.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        agree = y.argmax(1) == ref.argmax(1)
        conf = p.max(1) > 0.5
        m["top1"] = float(agree.mean())
        m["conf_top1"] = float(agree[conf].mean()) if conf.any() else 1.0
    return m


def not_worse(a: dict, b: dict) -> bool:
    """a is at least as good as b on every criterion both have."""
    return all(a[k] >= b[k] for k in b if k in a)


def dfq_guard(steps: list[tuple[str, list[Pass]]]) -> Pass:
    """A pass that tries every in-order combination of `steps` (label, passes) and keeps
    the one with the best SQNR among those whose int8 graph is not worse than the graph
    without any step, on the calibration data; no step at all if none qualifies."""

    def guarded(graph: Graph, ctx: PassContext) -> Graph:
        if not ctx.calib:
            ctx.record(PASS, decision="unguarded: no calibration data to measure on")
            for _, passes in steps:
                for p in passes:
                    graph = p(graph, ctx)
            return graph
        feeds = ctx.feeds()
        ref = _float_outputs(graph, feeds)  # the float function before any DFQ pass
        base = fidelity(_int8_outputs(graph, feeds, ctx), ref)
        ctx.record(PASS, step="none", calib_samples=len(ref), **base)
        trials = []  # (label, graph, log, score) for every non-empty combination
        for label, g, log in _combinations(graph, steps, ctx):
            trials.append((label, g, log, fidelity(_int8_outputs(g, feeds, ctx), ref)))
        eligible = [t for t in trials if not_worse(t[3], base)]
        best = max(eligible, key=lambda t: t[3]["sqnr"]) if eligible else None
        for label, _, _, score in trials:
            ctx.record(PASS, step=label, kept=best is not None and label == best[0], **score)
        if best is None:
            return graph
        ctx.log.extend(best[2])
        return best[1]

    guarded.__name__ = "dfq_guard"
    return guarded


def _combinations(graph: Graph, steps, ctx: PassContext, prefix: str = "", log: list | None = None):
    """Yield (label, graph, log) for every non-empty subset of steps, applied in order.
    A later step runs on the graph an earlier one left (bias correction repairs what CLE
    moved), so "CLE + absorption, bias correction" can pass where CLE alone does not."""
    for i, (label, passes) in enumerate(steps):
        trial_log = PassContext(calib=ctx.calib, options=ctx.options)
        trial = graph.copy()
        for p in passes:
            trial = p(trial, trial_log)
        name = f"{prefix}, {label}" if prefix else label
        entries = (log or []) + trial_log.log
        yield name, trial, entries
        yield from _combinations(trial, steps[i + 1:], ctx, name, entries)
