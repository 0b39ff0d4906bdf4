"""Empirical bias correction of the quantized graph, from the calibration data.

    qgraph = correct_bias_quantized(qgraph, float_graph, feeds)

Why: after quantization, each QConv / QGemm output is off by a systematic amount per
channel: the weight rounding (dW E[x]) and, unlike what the float pass
passes/correct_bias.py can see, the quantization of everything upstream (activation
rounding and clipping, earlier layers' own drift). The mean of that error is
E[y_q - y] per output channel; subtracting it from the int32 bias makes the layer
unbiased on the calibration data. This is the "empirical" bias correction of Nagel et
al. 2019 (section 4.2) done sequentially on the integer graph: layers are corrected in
topological order, each one measured with the already-corrected layers before it, so
the corrections do not double-count.

How, per layer (QConv / QGemm with a float twin of the same name):
- integer side: the int64 accumulators of the integer reference (edgeq.intref's own
  conv_accumulate / the QGemm sum) on the calibration samples as they arrive through
  the integer graph, times s_in * s_w[c]: the real pre-activation value the integer
  model computes;
- float side: the float node's pre-activation (its fused clamp removed) on the float
  graph's own values for the same samples;
- the bias moves by -round(mean_c(error) / (s_in * s_w[c])), only while the overflow
  proof of edgeq/quantize_rules/conv_gemm.py (K * 255 * qmax + |bias| < 2^31, also after
  the requant left shift) still holds.

Guard: the correction is kept only if it brings the outputs closer to float (output
SQNR) on calibration samples it was not fitted on; otherwise every bias goes back
(graph.meta["bias_correction"] records both numbers and the decision). The mean error
includes upstream clipping, and removing it everywhere can hurt (see
correct_bias_quantized). The comparison is cross-fitted (two interleaved folds: fit on
one, score on the other, and the reverse; then fit on all) because the in-sample one is
biased towards keeping shifts fitted on the very samples it scores, and on <= 64
samples it also flipped on small range changes (docs/fidelity.md, 2026-11-29 fourth
session).

Only int32 bias constants change: every lowering stays bit-exact with the reference
(they all read the same integer graph). Measured on the MLPerf Tiny models in
docs/fidelity.md. At most `limit` samples are used (default 64), processed in chunks,
so memory stays at one chunk's activations per live tensor, and fewer when the model is
large (MAC_BUDGET).
"""
from __future__ import annotations

import numpy as np

from edgeq.fixedpoint import clamp
from edgeq.floatexec.executor import run_node, tlbr_to_torch, to_torch
from edgeq.ir import Graph, Node
from edgeq.ops import holds, macs
from edgeq.passctx import PassContext
from edgeq.quantization.rules.conv_gemm import INT32_LIMIT, accumulator_bounds, overflowing_channels
from edgeq.reference import load_all, run_node as qrun
from edgeq.reference._common import check_int32, clamp_attrs, i64, mbqm_checked, to_int8
from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs

LIMIT = 64
CHUNK = 16
# Work cap: samples * MACs per sample. The MLPerf Tiny models (<= 77M MACs) get all 64
# samples; a 224x224 MobileNetV2 (~300M MACs) gets 16, so compile time stays bounded.
MAC_BUDGET = 5e9
# The guard's cross-fitting: shifts fitted on all folds but one, scored on that one.
FOLDS = 2


def _int_preact(node, x, w, bias) -> np.ndarray:
    """int64 accumulators (bias included) as the integer reference forms them
    (edgeq.intref.conv / gemm), computed with a torch conv, much faster than the
    loop-faithful reference and still exact: every product and partial sum is an integer
    of magnitude <= K * 255 * max|w|, so float32 is exact when that is below 2^24 (e.g. a
    3x3 depthwise layer, where float64 convs are slow) and float64 (2^53) otherwise; the
    bias is added in int64."""
    import torch
    import torch.nn.functional as F
    k = int(np.prod(w.shape[1:]))
    exact32 = k * 255 * int(np.max(np.abs(w.astype(np.int64)), initial=0)) < (1 << 24)
    dt = np.float32 if exact32 else np.float64
    xs = torch.from_numpy(x.astype(dt) - dt(node.attr("x_zp", 0)))
    wt = torch.from_numpy(w.astype(dt))
    if node.op == "QGemm":
        acc = F.linear(xs.reshape(xs.shape[0], -1), wt)
    else:
        nd = x.ndim - 2
        st = [int(v) for v in node.attr("strides", [1] * nd)]
        pd = [int(v) for v in node.attr("pads", [0] * (2 * nd))]
        dl = [int(v) for v in node.attr("dilations", [1] * nd)]
        if nd == 1:
            xs, wt = xs[:, :, None, :], wt[:, :, None, :]
            st, dl, pd = [1] + st, [1] + dl, [0, pd[0], 0, pd[1]]
        xs = F.pad(xs, tlbr_to_torch(pd))
        acc = F.conv2d(xs, wt, None, stride=st, dilation=dl, groups=int(node.attr("group", 1)))
    acc = np.rint(acc.numpy()).astype(np.int64)
    shape = (1, acc.shape[1]) + (1,) * (acc.ndim - 2)
    return acc + bias.astype(np.int64).reshape(shape)


def _int_output(node, acc: np.ndarray, mult, shift, nd: int) -> np.ndarray:
    """The kernel's tail (edgeq.intref.conv.qconv / gemm.qgemm) on given accumulators."""
    check_int32(acc, node.name)
    shape = (1, acc.shape[1]) + (1,) * (acc.ndim - 2)
    lo, hi = clamp_attrs(node)
    y = clamp(int(node.attr("y_zp", 0)) + mbqm_checked(acc, i64(mult).reshape(shape),
                                                       i64(shift).reshape(shape), node.name), lo, hi)
    y = to_int8(y)
    return y[:, :, 0, :] if node.op == "QConv" and nd == 1 else y


def _float_preact(fnode, x, fgraph: Graph) -> np.ndarray:
    import torch
    bare = Node(fnode.op, fnode.name, fnode.inputs, fnode.outputs,
                {k: v for k, v in fnode.attrs.items() if k not in ("act_min", "act_max")})
    args = [x] + [None if not n else to_torch(fgraph.const(n)) for n in fnode.inputs[1:]]
    with torch.inference_mode():
        return run_node(bare, args, fgraph).numpy().astype(np.float64)


def _channel_mean(e: np.ndarray) -> np.ndarray:
    """Sum over every axis but 1 (channels), and the count."""
    axes = tuple(i for i in range(e.ndim) if i != 1)
    return e.sum(axis=axes), e.size // e.shape[1]


def correct_bias_integer(qgraph: Graph, ctx: PassContext) -> Graph:
    """The pass: qgraph's biases corrected against ctx.float_graph (the float graph it was
    quantized from) on ctx.calib; a notice when the guard leaves the correction off."""
    qgraph = correct_bias_quantized(qgraph, ctx.float_graph, ctx.feeds())
    bc = qgraph.meta.get("bias_correction", {})
    if bc and not bc["kept"]:
        where = "held-out calibration samples" if bc.get("heldout") else "the calibration data"
        ctx.notice(f"integer bias correction left off: it lowered the output SQNR on {where} "
                   f"({bc['output_sqnr_db_before']} -> {bc['output_sqnr_db_after']} dB)")
    return qgraph


def correct_bias_quantized(qgraph: Graph, fgraph: Graph, feeds: dict[str, np.ndarray],
                           limit: int = LIMIT, chunk: int = CHUNK, folds: int = FOLDS) -> Graph:
    """Shift the int32 bias of every QConv/QGemm so its mean real pre-activation error
    over the calibration samples is ~0 (see module doc), and keep the shifts only if they
    bring the model's outputs closer to float on samples they were not fitted on: the
    cross-fitted guard below. Edits `qgraph` in place and returns it;
    graph.meta["quant_layers"][name]["bias_correction_lsb"] records the largest change
    per layer, graph.meta["bias_correction"] the guard's measurement and decision.

    Why the guard: the mean error also carries the clipping of upstream activations. When
    calibration clips hard (percentile ranges on MobileNetV2 224x224, where a few large
    ReLU6 values hold much of a late tensor's energy), removing that mean from every
    position shifts the unclipped majority: output SQNR fell from 16.1 to 8.6 dB on the
    very samples it was fitted on.

    Why held out: the shifts are fitted on the samples, so an in-sample comparison is
    biased towards keeping them, and on few samples it is also noisy in the other
    direction (a narrower range flipped it from keep to revert on ic01_large, throwing
    away ~2 dB on unseen data; docs/fidelity.md). So the samples are split into `folds`
    interleaved folds (sample i in fold i mod folds); for each fold the shifts are fitted
    on the other folds and the outputs are measured on it. The correction is kept when
    the output SQNR over all folds' held-out outputs beats the uncorrected graph's on the
    same samples; the final shifts are then fitted on all samples. With fewer than
    2 * folds samples the comparison falls back to in-sample (recorded as such)."""
    n = min(limit, len(next(iter(feeds.values()))))
    n = min(n, max(CHUNK, int(MAC_BUDGET // max(sum(macs(q, qgraph) for q in qgraph.nodes), 1))))
    if n == 0:
        return qgraph
    feeds = {k: np.asarray(v[:n], dtype=np.float32) for k, v in feeds.items()}
    before, ref = _sequential_pass(qgraph, fgraph, feeds, chunk, correct=False)
    biases = {qn.name: (qn.inputs[2], qgraph.tensors.get(qn.inputs[2])) for qn in qgraph.nodes
              if holds("weighted", qn) and len(qn.inputs) >= 3}
    sqnr_before = _sqnr(qgraph, ref, before)
    info = {"samples": n, "output_sqnr_db_before": round(float(sqnr_before), 2)}
    if folds >= 2 and n >= 2 * folds:
        held = {k: np.empty_like(v) for k, v in before.items()}
        fold = np.arange(n) % folds
        for k in range(folds):
            fit, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            _sequential_pass(qgraph, fgraph, {a: v[fit] for a, v in feeds.items()}, chunk, correct=True)
            out, _ = _sequential_pass(qgraph, fgraph, {a: v[test] for a, v in feeds.items()}, chunk,
                                      correct=False, float_side=False)
            _restore_biases(qgraph, biases)
            for name, v in out.items():
                held[name][test] = v
        sqnr_held = _sqnr(qgraph, ref, held)
        info.update(folds=folds, heldout=True, output_sqnr_db_after=round(float(sqnr_held), 2))
        kept = sqnr_held > sqnr_before
        if kept:
            after, _ = _sequential_pass(qgraph, fgraph, feeds, chunk, correct=True)
            info["output_sqnr_db_after_in_sample"] = round(float(_sqnr(qgraph, ref, after)), 2)
    else:
        after, _ = _sequential_pass(qgraph, fgraph, feeds, chunk, correct=True)
        sqnr_after = _sqnr(qgraph, ref, after)
        info.update(heldout=False, output_sqnr_db_after=round(float(sqnr_after), 2))
        kept = sqnr_after > sqnr_before
        if not kept:
            _restore_biases(qgraph, biases)
    info["kept"] = bool(kept)
    qgraph.meta["bias_correction"] = info
    return qgraph


def _sqnr(qgraph: Graph, ref: dict, got: dict) -> float:
    """Output SQNR (dB) of the integer outputs (dequantized) against float, all outputs."""
    real = dequantize_outputs(qgraph, got)
    sig = err = 0.0
    for name, f in ref.items():
        y = real[name].astype(np.float64)
        f = f.reshape(y.shape)
        sig, err = sig + float((f * f).sum()), err + float(((y - f) ** 2).sum())
    return 10 * np.log10(max(sig, 1e-30) / max(err, 1e-30))


def _restore_biases(qgraph: Graph, biases: dict) -> None:
    """Put back each layer's original bias tensor: {layer: (tensor name, Tensor)}."""
    layers = qgraph.meta.get("quant_layers", {})
    for qn in qgraph.nodes:
        if qn.name in biases and qn.inputs[2] != biases[qn.name][0]:
            qgraph.tensors.pop(qn.inputs[2], None)
            name, tensor = biases[qn.name]
            qn.inputs[2] = name
            if tensor is not None:
                qgraph.tensors[name] = tensor
            for key in ("bias_correction_lsb", "bias_max_abs", "acc_bound"):
                layers.get(qn.name, {}).pop(key, None)


def _sequential_pass(qgraph: Graph, fgraph: Graph, feeds: dict[str, np.ndarray], chunk: int,
                     correct: bool, float_side: bool = True) -> tuple[dict[str, np.ndarray], dict | None]:
    """Run the integer graph and the float graph side by side over the samples, in
    chunks; with `correct`, shift each layer's bias on the way (topological order, each
    layer measured with the corrected ones before it). Returns the integer and the float
    graph outputs (None without `float_side`, which only a pass that does not correct
    may drop)."""
    float_side = float_side or correct
    import torch

    load_all()
    n = len(next(iter(feeds.values())))
    starts = list(range(0, n, chunk))
    fnodes = {fn.name: fn for fn in fgraph.nodes}
    fpos = {fn.name: i for i, fn in enumerate(fgraph.nodes)}

    # float side: advanced lazily in the float graph's own order, one list of chunks per tensor
    fenv = {k: [to_torch(v[s:s + chunk]) for s in starts] for k, v in feeds.items()}
    flast: dict[str, int] = {}
    for i, fn in enumerate(fgraph.nodes):
        for name in fn.inputs:
            flast[name] = i
    fdone = [0]
    fconst: dict[str, object] = {}

    def fval(name):
        if name in fenv:
            return fenv[name]
        if name not in fconst:
            fconst[name] = to_torch(fgraph.const(name))
        return [fconst[name]] * len(starts)

    def advance_float(upto: int):
        with torch.inference_mode():
            while fdone[0] <= upto:
                i = fdone[0]
                fn = fgraph.nodes[i]
                args = [fval(a) if a else [None] * len(starts) for a in fn.inputs]
                fenv[fn.outputs[0]] = [run_node(fn, [a[c] for a in args], fgraph) for c in range(len(starts))]
                fdone[0] += 1

    # integer side: the reference interpreter's loop, chunked
    qin = quantize_inputs(qgraph, feeds)
    qenv = {k: [v[s:s + chunk] for s in starts] for k, v in qin.items()}
    qlast: dict[str, int] = {}
    for i, qn in enumerate(qgraph.nodes):
        for name in qn.inputs:
            qlast[name] = i
    # the float inputs each corrected layer needs, and until which q node they are needed
    fneed: dict[str, int] = {}
    if correct:
        for i, qn in enumerate(qgraph.nodes):
            if holds("weighted", qn) and qn.name in fnodes:
                fneed[fnodes[qn.name].inputs[0]] = i
    layers = qgraph.meta.setdefault("quant_layers", {})

    for i, qn in enumerate(qgraph.nodes):
        def qval(name):
            if not name:
                return [None] * len(starts)
            if name in qenv:
                return qenv[name]
            return [qgraph.const(name)] * len(starts)
        args = [qval(a) for a in qn.inputs]
        fn = fnodes.get(qn.name)
        if fn is not None and float_side:  # keep the float side in step, so its live tensors stay few
            advance_float(fpos[fn.name])
        if correct and holds("weighted", qn) and fn is not None and holds("weighted", fn) and len(qn.inputs) >= 3:
            accs = _correct(qgraph, qn, fn, fgraph, args, fenv[fn.inputs[0]], layers)
            args = [qval(a) for a in qn.inputs]  # the bias constant was replaced
            if accs is not None:
                m, sh = qgraph.const(qn.inputs[3]), qgraph.const(qn.inputs[4])
                qenv[qn.outputs[0]] = [_int_output(qn, acc, m, sh, xc.ndim - 2)
                                       for acc, xc in zip(accs, args[0])]
        if qn.outputs[0] in qenv:
            pass
        elif holds("weighted", qn) and len(qn.inputs) == 5 and all(qgraph.const(a) is not None for a in qn.inputs[1:]):
            w, b, m, sh = (qgraph.const(a) for a in qn.inputs[1:])
            qenv[qn.outputs[0]] = [_int_output(qn, _int_preact(qn, xc, w, b), m, sh, xc.ndim - 2)
                                   for xc in args[0]]
        else:
            qenv[qn.outputs[0]] = [qrun(qn, [a[c] for a in args]) for c in range(len(starts))]
        for a in qn.inputs:
            if qlast.get(a) == i and a in qenv and a not in qgraph.outputs:
                del qenv[a]
        # free float tensors no remaining corrected layer or float node needs
        for name in [k for k in fenv if k not in feeds and k not in fgraph.outputs]:
            if fneed.get(name, -1) <= i and flast.get(name, -1) < fdone[0]:
                del fenv[name]
    qout = {k: np.concatenate(qenv[k]) for k in qgraph.outputs}
    if not float_side:
        return qout, None
    advance_float(len(fgraph.nodes) - 1)
    fout = {q: torch.cat(fenv[f]).numpy().astype(np.float64) for q, f in zip(qgraph.outputs, fgraph.outputs)}
    return qout, fout


def _correct(qgraph: Graph, qn, fn, fgraph: Graph, qargs, fx_chunks, layers: dict):
    """Correct one layer's bias in place; returns its accumulators per chunk with the
    final bias (None when the layer was left alone before computing them)."""
    w_name, b_name = qn.inputs[1], qn.inputs[2]
    w, bias = qgraph.const(w_name), qgraph.const(b_name)
    if w is None or bias is None or len(qn.inputs) != 5:
        return None
    s_in = float(np.ravel(qgraph.tensors[qn.inputs[0]].q.scale)[0]) if qgraph.tensors[qn.inputs[0]].q \
        is not None else None
    wq = qgraph.tensors[w_name].q
    if s_in is None or wq is None:
        return None
    co = w.shape[0]
    s_w = np.broadcast_to(np.asarray(wq.scale, np.float64), (co,))
    step = s_in * s_w  # real value of one accumulator LSB, per channel
    total, count, accs = np.zeros(co), 0, []
    for xq, xf in zip(qargs[0], fx_chunks):
        acc = _int_preact(qn, xq, w, bias)
        accs.append(acc)
        yf = _float_preact(fn, xf, fgraph)
        e = acc.astype(np.float64) * step.reshape((1, co) + (1,) * (acc.ndim - 2)) - yf.reshape(acc.shape)
        s, c = _channel_mean(e)
        total += s
        count += c
    delta = np.round(total / max(count, 1) / step).astype(np.int64)
    if not np.any(delta):
        return accs
    new = bias.astype(np.int64) - delta
    # keep the accumulator proof of quantize_rules/conv_gemm.py, channel by channel
    bounds = accumulator_bounds(w, new)
    if overflowing_channels(bounds, qgraph.const(qn.inputs[4])).size or np.max(np.abs(new)) > INT32_LIMIT:
        return accs
    bound = int(np.max(bounds, initial=0))
    name = qgraph.add_const(f"{qn.name}_bias_corrected", new.astype(np.int32))
    qn.inputs[2] = name
    if b_name not in {a for other in qgraph.nodes for a in other.inputs}:
        qgraph.tensors.pop(b_name, None)
    info = layers.setdefault(qn.name, {})
    info["bias_correction_lsb"] = int(np.max(np.abs(delta)))
    info["bias_max_abs"] = int(np.max(np.abs(new), initial=0))
    info["acc_bound"] = bound
    shape = (1, co) + (1,) * (accs[0].ndim - 2)
    return [acc - delta.reshape(shape) for acc in accs]
