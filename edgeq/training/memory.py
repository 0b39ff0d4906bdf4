"""Bytes a training step needs beyond inference, from the plan alone (no run).

- trained parameters in SRAM: a layer whose weights move is copied whole to SRAM as int8
  (the forward kernel reads one contiguous tensor), plus one residual byte per selected
  weight in "master" mode and with momentum 4 velocity bytes per weight of the tensor (the
  C step indexes the velocity like the weights; unselected ones stay 0); a
  moving bias is int32 in SRAM (4 bytes a channel, 4 more with momentum). Everything
  else stays in flash (`frozen_flash`).
- kept activations: the tensors `plan.keep` holds from the forward until its backward
  reads them (int8): outputs under a clamp mask and the inputs of weight updates, the
  latter only for the selected input channels. This is an upper bound on what the arena
  grows by: the memory planner may find some of them alive at the inference peak anyway
  (and a 1-bit mask instead of the int8 output would cut masks 8x).
- gradient buffers: the peak over the backward of the live gradients: pending tensors'
  mantissas (2 bytes at 16 bits, 1 at 8) plus the int32 accumulators a rule is filling
  (4 bytes an input element; normalized in place afterwards). Data movement rules
  (reshape, requant, an add without broadcasting) pass their buffer on.
"""
from __future__ import annotations

import numpy as np

from edgeq.training.plan import TrainPlan
from edgeq.training.spec import input_channels

ALIASING = {"QReshape", "QRequant"}
COPYING = {"QTranspose", "QPad", "QConcat"}


def _elems(plan: TrainPlan, name: str) -> int:
    return int(np.prod(plan.graph.tensors[name].shape, dtype=np.int64))


def parameter_bytes(plan: TrainPlan) -> dict[str, int]:
    g, opts = plan.graph, plan.options
    out = {"weights": 0, "residuals": 0, "biases": 0, "momentum": 0}
    for name, u in plan.updates.items():
        node = g.node_by_name(name)
        w = g.const(node.inputs[1])
        if u.weights:
            selected = int(plan.consts[name]["select"].sum())
            out["weights"] += int(w.size)
            out["residuals"] += selected if opts.weight_update == "master" else 0
            out["momentum"] += 4 * int(w.size) if opts.momentum else 0
        if u.bias:
            out["biases"] += 4 * int(w.shape[0])
            out["momentum"] += 4 * int(w.shape[0]) if opts.momentum else 0
    return out


def kept_bytes(plan: TrainPlan) -> int:
    g = plan.graph
    full = set()
    partial: dict[str, float] = {}
    for node in plan.backward:
        c = plan.consts[node.name]
        u = plan.updates.get(node.name)
        for name in c.get("keep", ()):
            if u is not None and u.weights and u.channels is not None and name == node.inputs[0]:
                frac = len(u.channels) / input_channels(g, node)
                partial[name] = max(partial.get(name, 0.0), frac)
            else:
                full.add(name)
    total = sum(_elems(plan, n) for n in full)
    total += sum(int(np.ceil(_elems(plan, n) * f)) for n, f in partial.items() if n not in full)
    return int(total)


def gradient_peak(plan: TrainPlan) -> int:
    per = 2 if plan.options.grad_bits == 16 else 1
    live = {plan.logits: per * _elems(plan, plan.logits)}
    peak = sum(live.values())
    for node in plan.backward:
        out = node.outputs[0]
        extra = 0
        wanted = [node.inputs[i] for i, w in enumerate(plan.wants[node.name]) if w]
        for name in wanted:
            same = plan.graph.tensors[name].shape == plan.graph.tensors[out].shape
            if node.op in ALIASING or (node.op == "QAdd" and same):
                continue
            extra += (per if node.op in COPYING else 4) * _elems(plan, name)
        peak = max(peak, sum(live.values()) + extra)
        live.pop(out, None)
        for name in wanted:
            live[name] = live.get(name, 0) or per * _elems(plan, name)
    return int(peak)


def step_memory(plan: TrainPlan) -> dict[str, int]:
    """The bytes above, and their total (what a training budget has to hold)."""
    params = parameter_bytes(plan)
    g = plan.graph
    flash = sum(t.nbytes for t in g.tensors.values() if t.is_const)
    out = dict(params)
    out["kept_activations"] = kept_bytes(plan)
    out["gradient_peak"] = gradient_peak(plan)
    out["total"] = sum(params.values()) + out["kept_activations"] + out["gradient_peak"]
    out["frozen_flash"] = int(flash - params["weights"] - params["biases"])
    return out
