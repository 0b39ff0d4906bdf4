"""Transfer benchmark: integer on-device training vs float fine-tuning, on real Fashion-MNIST.

    python benchmarks/transfer_fmnist.py                     # the table in docs/training.md
    python benchmarks/transfer_fmnist.py --quick             # a smoke run (small sets)

The network (models/fmnist_dscnn_heldout89.onnx, `python -m edgeq.models.pretrain_heldout`)
was pre-trained on the host without classes 8 and 9 (Bag, Ankle boot). It is deployed
int8 by edgeq (reference target, calibrated on 256 training images of the known classes:
what the deployer had), then fine-tuned on the shifted task, all ten classes, with
TRAIN_SAMPLES real training images (a fixed random draw, about a fifth of them from the
new classes) for EPOCHS epochs, one sample per step, the same order for every method:
- int8: edgeq.training's integer training step (the golden semantics the device runs);
- float: PyTorch SGD on the float graph edgeq quantized (BN folded), updating the SAME
  parameters (same layers, same channels) with the same learning rate, data, order and
  number of steps.
The learning rate of each spec is chosen for the FLOAT run on a validation split (other
training images) and then used unchanged by the integer run. Accuracy is top-1 on the
full 10,000-image test set (and on its 2,000 images of the held-out classes).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "fmnist_dscnn_heldout89.onnx"
HELDOUT = (8, 9)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--train-samples", type=int, default=2000)
    ap.add_argument("--val-samples", type=int, default=2000)
    ap.add_argument("--test-samples", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--specs", default="bias,last:1,last:2,last:3,auto")
    ap.add_argument("--budget", type=int, default=64 * 1024, help="bytes for --train auto")
    ap.add_argument("--lrs", default="0.003,0.01,0.03,0.1", help="learning rates tried on the float run")
    ap.add_argument("--ablations", action="store_true", help="also int8 weight-update variants for last:2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--firmware", default=None, metavar="TARGET",
                    help="also train each spec (not auto) through the command line on TARGET (host, cortex-m7): "
                         "edgeq compile --train, edgeq train; report its accuracy and whether its learned "
                         "weights equal the reference run's byte for byte")
    ap.add_argument("--quick", action="store_true", help="300 training / 300 val / 1000 test samples, 1 epoch")
    ap.add_argument("--memory", action="store_true", help="only print the step memory of each spec (no training)")
    ap.add_argument("--step-sizes", type=float, default=None, metavar="LR",
                    help="only print how large last:2's weight and bias steps are at this learning rate")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_samples, args.val_samples, args.test_samples, args.epochs = 300, 300, 1000, 1
    return args


def data(args):
    from edgeq.models.fmnist import load_fmnist, preprocess
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    order = np.random.default_rng(args.seed).permutation(len(xtr))
    ft, val = order[:args.train_samples], order[args.train_samples:args.train_samples + args.val_samples]
    known = np.flatnonzero(~np.isin(ytr, HELDOUT))[:256]
    return {"calib": preprocess(xtr[known]),
            "ft": (preprocess(xtr[ft]), ytr[ft]), "val": (preprocess(xtr[val]), ytr[val]),
            "test": (preprocess(xte[:args.test_samples]), yte[:args.test_samples])}


def epoch_orders(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    return [np.random.default_rng(seed + 1000 + e).permutation(n) for e in range(epochs)]


# ---- float ----------------------------------------------------------------------------------

def float_finetune(float_graph, updates, x, y, lr, orders):
    """Plain SGD, batch 1, on the float graph's W/B of the chosen layers (and channels)."""
    from edgeq.floatexec.executor import FloatModule
    net = FloatModule(float_graph.copy())
    params, masks = [], []
    by_node = {n.name: n for n in net.graph.nodes}
    for p in net.parameters():
        p.requires_grad_(False)
    for u in updates:
        node = by_node[u.node]
        if u.bias:
            params.append(net.tensor(node.inputs[2]))
            masks.append(None)
        if u.weights:
            w = net.tensor(node.inputs[1])
            mask = None
            if u.channels is not None:
                ci = np.zeros(w.shape[1] * int(node.attrs.get("group", 1)), dtype=bool)
                ci[list(u.channels)] = True
                group = int(node.attrs.get("group", 1))
                co, cig = w.shape[:2]
                idx = (np.arange(co)[:, None] // (co // group)) * cig + np.arange(cig)[None, :]
                mask = torch.from_numpy(ci[idx].reshape((co, cig) + (1,) * (w.dim() - 2)).astype(np.float32))
            params.append(w)
            masks.append(mask)
    for p in params:
        p.requires_grad_(True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for order in orders:
        for i in order:
            loss = torch.nn.functional.cross_entropy(net(xt[i:i + 1]), yt[i:i + 1])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g, m in zip(params, grads, masks):
                    p -= lr * (g if m is None else g * m)
    return net


def float_accuracy(net, x, y) -> float:
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


# ---- int8 -----------------------------------------------------------------------------------

def activations(qgraph, x_int8, names, chunk=500):
    """The named tensors of the deployed graph for a batch (the frozen prefix of every plan:
    frozen tensors never change, so one reference run serves all specs)."""
    from edgeq.reference.interpreter import run_reference
    names = sorted(set(names))
    parts = [run_reference(qgraph, {qgraph.inputs[0]: x_int8[i:i + chunk]}, names)
             for i in range(0, len(x_int8), chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


def int_finetune(plan, cache, y, orders):
    from edgeq.training import TrainState, train_step
    state = TrainState(plan)
    cut = plan.frozen_inputs()
    for order in orders:
        for i in order:
            train_step(plan, state, None, y[i], frozen={k: cache[k][i:i + 1] for k in cut})
    return state


def int_accuracy(plan, state, cache, y, rows=slice(None)) -> float:
    from edgeq.training.step import predict
    logits = predict(plan, state, {k: cache[k][rows] for k in plan.frozen_inputs()})
    return float((logits.reshape(len(logits), -1).argmax(1) == y[rows]).mean())


# ---- the firmware path: the command line, as a user trains ------------------------------------

def firmware_run(args, spec, lr, qgraph, d, orders, plan, state, work: Path) -> dict:
    """edgeq compile --train SPEC --train-lr LR, then edgeq train with the same samples in the
    same order (all epochs as one stream); the learned graph against the reference state."""
    import subprocess
    from edgeq.graphio.onnx_io import load_graph
    (xf, yf), (xt, yt) = d["ft"], d["test"]
    build = work / f"build_{spec.replace(':', '_')}"
    np.save(work / "calib.npy", d["calib"])
    stream = np.concatenate(orders)
    np.savez(work / "train.npz", x=xf[stream], y=yf[stream].astype(np.int64))
    edgeq = [sys.executable, "-m", "edgeq.cli"]
    t0 = time.perf_counter()
    for cmd in (["compile", str(args.model), "--target", args.firmware, "--calib", str(work / "calib.npy"),
                 "--train", spec, "--train-lr", str(lr), "-o", str(build), "-q"],
                ["train", str(build), "--data", str(work / "train.npz"), "-q"]):
        print("  $ edgeq " + " ".join(cmd), flush=True)
        res = subprocess.run(edgeq + cmd, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"edgeq {cmd[0]} failed: {res.stderr.strip()}")
    seconds = time.perf_counter() - t0
    learned = load_graph(build / "model.q.onnx")
    trained = state.to_graph()
    same = all(np.array_equal(learned.const(name), trained.const(name))
               for name, t in trained.tensors.items() if t.is_const)
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    xi = quantize_inputs(learned, {learned.inputs[0]: xt})[learned.inputs[0]]
    logits = np.concatenate([run_reference(learned, {learned.inputs[0]: xi[i:i + 500]})[learned.outputs[0]]
                             for i in range(0, len(xi), 500)])
    return {"same": same, "top1": float((logits.reshape(len(xi), -1).argmax(1) == yt).mean()), "seconds": seconds}


# ---- the run --------------------------------------------------------------------------------

def resolve(spec, qgraph, d, args, options):
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.training.auto import select
    from edgeq.training.spec import resolve as resolve_spec
    if spec != "auto":
        return resolve_spec(spec, qgraph), None
    x, y = d["ft"]
    xi = quantize_inputs(qgraph, {qgraph.inputs[0]: x[:64]})[qgraph.inputs[0]]
    return select(qgraph, args.budget, xi, y[:64], options)


def variants(args):
    from edgeq.training import TrainOptions
    out = [(s, TrainOptions(), None) for s in args.specs.split(",")]
    if args.ablations:  # the same updates and learning rate as last:2, other number handling
        out += [("last:2", TrainOptions(weight_update=m), "last:2") for m in ("stochastic", "nearest")]
        out += [("last:2", TrainOptions(grad_bits=8, rounding="stochastic"), "last:2")]
    return out


def main(argv=None) -> int:
    import dataclasses

    import edgeq
    from edgeq.floatexec.executor import FloatModule
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.training import TrainOptions, TrainState, build_plan
    from edgeq.training.memory import step_memory

    args = parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    d = data(args)
    result = edgeq.compile(str(args.model), target="reference", calib=d["calib"], progress=False)
    qgraph, fgraph = result.qgraph, result.float_graph
    if args.memory:
        return print_memory(qgraph, d, args)
    if args.step_sizes:
        return print_step_sizes(qgraph, d, args)
    (xf, yf), (xv, yv), (xt, yt) = d["ft"], d["val"], d["test"]
    held = np.isin(yt, HELDOUT)
    orders = epoch_orders(len(xf), args.epochs, args.seed)
    lrs = [float(v) for v in args.lrs.split(",")]
    print(f"fine-tuning set: {len(xf)} images ({int(np.isin(yf, HELDOUT).sum())} of classes {HELDOUT}), "
          f"{args.epochs} epochs = {len(xf) * args.epochs} steps; test: {len(xt)} images", flush=True)

    runs = []
    for spec, base, lr_from in variants(args):
        updates, auto_report = resolve(spec, qgraph, d, args, base)
        runs.append((spec, base, lr_from, updates, auto_report, build_plan(qgraph, updates, base)))
    cuts = {k for r in runs for k in r[5].frozen_inputs()} | set(build_plan(qgraph, "last:1").frozen_inputs())
    q = lambda x: quantize_inputs(qgraph, {qgraph.inputs[0]: x})[qgraph.inputs[0]]  # noqa: E731
    ft_cache, test_cache = activations(qgraph, q(xf), cuts), activations(qgraph, q(xt), cuts)
    print(f"frozen activations computed ({time.perf_counter() - t_start:.0f} s)", flush=True)

    base_plan = build_plan(qgraph, "last:1")
    rows = [("deployed, before training", "-", "-", "-", float_accuracy(FloatModule(fgraph), xt, yt),
             int_accuracy(base_plan, TrainState(base_plan), test_cache, yt),
             float_accuracy(FloatModule(fgraph), xt[held], yt[held]),
             int_accuracy(base_plan, TrainState(base_plan), test_cache, yt, held), "-")]
    chosen_lr = {}
    firmware_rows = []
    for spec, base, lr_from, updates, auto_report, _ in runs:
        if lr_from not in chosen_lr:  # picked for the float run on the validation split
            chosen_lr[lr_from or spec] = max(lrs, key=lambda lr: float_accuracy(
                float_finetune(fgraph, updates, xf, yf, lr, orders), xv, yv))
        best = chosen_lr[lr_from or spec]
        plan = build_plan(qgraph, updates, dataclasses.replace(base, lr=best))
        fnet = float_finetune(fgraph, updates, xf, yf, best, orders)
        t0 = time.perf_counter()
        state = int_finetune(plan, ft_cache, yf, orders)
        t_int = time.perf_counter() - t0
        name = spec if lr_from is None else f"{spec} ({describe(base)})"
        rows.append((name, describe_updates(updates), step_memory(plan)["total"], best,
                     float_accuracy(fnet, xt, yt), int_accuracy(plan, state, test_cache, yt),
                     float_accuracy(fnet, xt[held], yt[held]), int_accuracy(plan, state, test_cache, yt, held),
                     f"{t_int:.0f} s"))
        print(f"  {name}: lr {best}, float {rows[-1][4]:.4f}, int8 {rows[-1][5]:.4f} ({t_int:.0f} s)", flush=True)
        if args.firmware and spec != "auto" and lr_from is None:
            import tempfile
            with tempfile.TemporaryDirectory(prefix="transfer-fw-") as work:
                fw = firmware_run(args, spec, best, qgraph, d, orders, plan, state, Path(work))
            firmware_rows.append((name, fw))
            print(f"  {name} through `edgeq train` on {args.firmware}: top-1 {fw['top1']:.4f}, learned weights "
                  f"{'byte-identical to' if fw['same'] else 'DIFFERENT from'} the reference run "
                  f"({fw['seconds']:.0f} s)", flush=True)
        if auto_report:
            print(f"  auto chose {auto_report['chosen']} for {args.budget} bytes", flush=True)

    print()
    print("| spec | updated | step memory (bytes) | lr | float top-1 | int8 top-1 | int8 - float (points) "
          "| held-out classes: float / int8 | int8 training time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name, upd, mem, lr, fa, ia, fh, ih, t in rows:
        diff = (ia - fa) * 100
        print(f"| {name} | {upd} | {mem} | {lr} | {fa * 100:.2f}% | {ia * 100:.2f}% | {diff:+.2f} | "
              f"{fh * 100:.1f}% / {ih * 100:.1f}% | {t} |")
        if mem != "-" and "(" not in name:
            worst = max(worst, -diff)
    if firmware_rows:
        print(f"\n| spec | int8 top-1, `edgeq train` on {args.firmware} | learned weights = reference run | "
              "compile + train time |")
        print("|---|---:|---|---:|")
        for name, fw in firmware_rows:
            print(f"| {name} | {fw['top1'] * 100:.2f}% | {'byte-identical' if fw['same'] else 'DIFFERENT'} | "
                  f"{fw['seconds']:.0f} s |")
    print(f"\nlargest int8 shortfall vs float (main specs): {worst:.2f} points; "
          f"total run time {time.perf_counter() - t_start:.0f} s")
    return 0 if all(fw["same"] for _, fw in firmware_rows) else 1


def print_memory(qgraph, d, args) -> int:
    from edgeq.training import TrainOptions, build_plan
    from edgeq.training.memory import step_memory
    print("| spec | SRAM weights | residuals | biases | kept activations | gradient peak | total |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in args.specs.split(","):
        updates, _ = resolve(spec, qgraph, d, args, TrainOptions())
        m = step_memory(build_plan(qgraph, updates, TrainOptions()))
        name = f"auto ({args.budget} B)" if spec == "auto" else spec
        print(f"| {name} | {m['weights']} | {m['residuals']} | {m['biases']} | {m['kept_activations']} | "
              f"{m['gradient_peak']} | {m['total']} |")
    return 0


def print_step_sizes(qgraph, d, args) -> int:
    """|step| of every weight and bias update during int8 last:2 fine-tuning, in units of
    the int8 weight / int32 bias (instrumented: the steps are recorded as update.step
    returns them)."""
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.training import TrainOptions, build_plan
    from edgeq.training import update
    plan = build_plan(qgraph, "last:2", TrainOptions(lr=args.step_sizes))
    xf, yf = d["ft"]
    cache = activations(qgraph, quantize_inputs(qgraph, {qgraph.inputs[0]: xf})[qgraph.inputs[0]],
                        plan.frozen_inputs())
    seen, original = [], update.step

    def recording(acc, mult, shift, e, rounding, rng):
        out = original(acc, mult, shift, e, rounding, rng)
        seen.append(np.abs(out).ravel())
        return out

    update.step = recording
    try:
        int_finetune(plan, cache, yf, epoch_orders(len(xf), args.epochs, args.seed))
    finally:
        update.step = original
    weights = np.concatenate(seen[1::2]) / 256.0  # per layer: bias first, then weights (master units)
    biases = np.concatenate(seen[0::2]).astype(np.float64)
    print(f"last:2 at lr {args.step_sizes}, {len(seen) // 2} layer updates")
    for name, v in (("weight steps (int8 units)", weights), ("bias steps (int32 units)", biases)):
        print(f"{name}: median {np.median(v):.3g}, 90th percentile {np.percentile(v, 90):.3g}, "
              f"below 0.5 unit {np.mean(v < 0.5) * 100:.1f}%")
    return 0


def describe(o) -> str:
    parts = [f"weights {o.weight_update}"] if o.weight_update != "master" else []
    if o.grad_bits != 16:
        parts.append(f"{o.grad_bits}-bit gradients, {o.rounding} rounding")
    return ", ".join(parts)


def describe_updates(updates) -> str:
    b = sum(u.bias for u in updates)
    w = [u for u in updates if u.weights]
    part = sum(u.channels is not None for u in w)
    return f"{b} biases, {len(w)} weight layers" + (f" ({part} partial)" if part else "")


if __name__ == "__main__":
    sys.exit(main())
