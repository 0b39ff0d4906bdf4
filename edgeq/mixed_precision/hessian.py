"""Hessian traces by Hutchinson's estimator: Tr(H) = E_v[v^T H v] for Rademacher v.

H v comes from two backward passes (Pearlmutter's trick: d/dW (g . v) with g the gradient
built with create_graph), so the Hessian is never formed. One v over all parameters gives
every layer's block trace at once: E[v_i^T H_ij v_j] = 0 for i != j, so v_i^T (H v)_i is an
unbiased estimate of Tr(H_ii).

The loss is label-free (HAWQ on unlabelled calibration data): the KL divergence from the
float model's own softmax output, held fixed. At the float weights the gradient of that KL
is zero but its Hessian is the Fisher/Gauss-Newton matrix, positive semi-definite, so the
traces are >= 0 up to estimator noise.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgeq.floatexec.executor import FloatModule, to_torch
from edgeq.ir import Graph


def hutchinson_trace(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                     iters: int = 16, seed: int = 0) -> np.ndarray:
    """Estimated Tr(H_ii) of loss_fn() for each tensor in params (float64 array)."""
    gen = torch.Generator().manual_seed(seed)
    loss = loss_fn()
    grads = torch.autograd.grad(loss, list(params), create_graph=True)
    est = np.zeros(len(params))
    for _ in range(iters):
        vs = [torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1 for p in params]
        # retain_graph: the same first-order graph serves every probe vector
        hvs = torch.autograd.grad(grads, list(params), grad_outputs=vs, retain_graph=True)
        est += np.array([float((v * hv).sum()) for v, hv in zip(vs, hvs)])
    return est / iters


def self_kl_loss(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """KL(softmax(ref) || softmax(out)) averaged over the batch; for outputs that are not
    [N, classes] logits, half the mean squared error to ref (its Hessian is as label-free)."""
    if out.ndim == 2 and out.shape[1] > 1:
        return F.kl_div(F.log_softmax(out, 1), F.log_softmax(ref, 1), log_target=True,
                        reduction="batchmean")
    return 0.5 * ((out - ref) ** 2).mean()


def layer_hessian_traces(graph: Graph, feeds: dict[str, np.ndarray], weights: list[str],
                         iters: int = 16, batch: int = 32, seed: int = 0,
                         progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Tr(H) of the self-KL loss w.r.t. each weight constant in `weights`, averaged over
    batches of the calibration feeds. `progress(k)` is called after each batch."""
    module = FloatModule(graph)
    params = [module.tensor(w) for w in weights]
    n = len(next(iter(feeds.values())))
    total, batches = np.zeros(len(weights)), 0
    for s in range(0, n, batch):
        x = {k: to_torch(np.asarray(v[s:s + batch], np.float32)) for k, v in feeds.items()}
        with torch.no_grad():
            ref = module.run(x)[graph.outputs[0]]
        traces = hutchinson_trace(lambda: self_kl_loss(module.run(x)[graph.outputs[0]], ref),
                                  params, iters=iters, seed=seed + batches)
        total += traces
        batches += 1
        if progress:
            progress(min(batch, n - s))
    return total / max(batches, 1)
