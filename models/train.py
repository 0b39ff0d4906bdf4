"""Train the Fashion-MNIST reference networks and export them to ONNX.

    python -m edgeq.models.train                      # all three, default epochs, into models/
    python -m edgeq.models.train --model dscnn --epochs 7 --out /tmp/m

Sized for a small shared machine: 1 CPU thread by default (see --threads), fixed seed,
Adam with a OneCycle learning-rate schedule, batch 128, random horizontal flips as the only
augmentation, channels_last memory format (depthwise convs train ~2x faster with it on CPU).
Default epochs keep each network to a few minutes of wall clock (see models/README.md).

Threads: on a 2-core machine shared with other jobs (load ~5), two OpenMP threads spin at
every barrier and made a DS-CNN batch ~10x slower (2 s vs 0.2 s) than one thread; on an idle
machine --threads 2 is ~1.5x faster than 1. Results differ across thread counts only by
float summation order.

Export: the TorchScript exporter (dynamo=False), opset 13, EVAL mode, no constant folding,
so each Conv is followed by its own BatchNormalization node (edgeq folds BN itself) and
the file is self-contained (no external data). Input "input" float32 [1, 1, 28, 28]
(pixel / 255, see fmnist.preprocess), output "logits" float32 [1, 10] (no softmax). The IR
version is set to 8 so older onnxruntime builds load the file too. The ONNX file is checked
against the torch model with onnxruntime before it is written to its final name, and its
metadata records the preprocessing and the float test accuracy.

Results (params, MACs, accuracy, time) are merged into OUT/fmnist_results.json, which
models/registry.py and tests/test_models.py read.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from edgeq.models import nets
from edgeq.models.fmnist import CLASSES, load_fmnist, preprocess

MODELS_DIR = Path(__file__).resolve().parent
# Epochs that fit in ~3-5 minutes each on one thread of a busy 2-core machine (measured
# with channels_last under load ~5: dscnn ~60 s/epoch, mobilenetv2 ~120 s/epoch, resnet8 ~20-30 s/epoch).
DEFAULT_EPOCHS = {"dscnn": 4, "mobilenetv2": 3, "resnet8": 12}
RESULTS_FILE = "fmnist_results.json"
IR_VERSION = 8
N_SUBSET = 500      # tests check the first 500 test images; record the float accuracy there too


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, np.ndarray]:
    """Top-1 accuracy and the predictions of `model` (eval mode) on x."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].contiguous(memory_format=torch.channels_last)
            preds.append(model(xb).argmax(1))
    p = torch.cat(preds)
    return float((p == y).float().mean()), p.numpy()


def train_one(name: str, epochs: int, seed: int = 0, batch: int = 128, max_lr: float = 0.01,
              limit: int | None = None, threads: int = 1, log=print) -> tuple[torch.nn.Module, dict]:
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)      # denormal grads late in training slow CPU kernels
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    xtr_t, ytr_t = torch.from_numpy(preprocess(xtr)), torch.from_numpy(ytr)
    xte_t, yte_t = torch.from_numpy(preprocess(xte)), torch.from_numpy(yte)

    model = nets.build(name).to(memory_format=torch.channels_last)
    steps = (len(xtr_t) + batch - 1) // batch
    opt = torch.optim.Adam(model.parameters(), lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr_t), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            xb, yb = xtr_t[idx], ytr_t[idx]
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb).contiguous(memory_format=torch.channels_last)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            total += len(yb)
        log(f"{name} epoch {ep + 1}/{epochs}: loss {loss_sum / total:.4f} train acc {correct / total:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    train_s = time.perf_counter() - t0
    acc, preds = evaluate(model, xte_t, yte_t)
    sub_acc = float((preds[:N_SUBSET] == yte[:N_SUBSET]).mean())
    model = model.to(memory_format=torch.contiguous_format).eval()
    info = {
        "params": nets.count_params(model),
        "macs": nets.count_macs(model),
        "float_test_accuracy": round(acc, 4),
        f"float_test_accuracy_first{N_SUBSET}": round(sub_acc, 4),
        "train_seconds": round(train_s, 1),
        "epochs": epochs,
        "seed": seed,
        "batch": batch,
        "max_lr": max_lr,
        "train_images": len(xtr_t),
        "threads": threads,
        "torch": torch.__version__,
        "command": f"python -m edgeq.models.train --model {name} --epochs {epochs} --seed {seed} --threads {threads}",
    }
    log(f"{name}: test accuracy {acc:.4f} (first {N_SUBSET}: {sub_acc:.4f}), {info['params']} params, "
        f"{info['macs']} MACs, trained in {train_s:.0f} s")
    return model, info


def export_onnx(model: torch.nn.Module, path: Path, info: dict | None = None) -> Path:
    """Export (Conv + BN kept, opset 13, IR 8), check with onnxruntime, then move into place."""
    model = model.eval()
    x = torch.from_numpy(preprocess(load_fmnist("test")[0][:1]))
    tmp = path.with_suffix(".tmp.onnx")
    # dynamo=False on purpose (keeps BN, needs no onnxscript): silence its deprecation notice.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=13,
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=False,
                          input_names=["input"], output_names=["logits"])
    m = onnx.load(str(tmp))
    m.ir_version = IR_VERSION
    meta = {"dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)",
            "preprocessing": "float32 NCHW [N,1,28,28] = uint8 pixel / 255, no normalisation",
            "output": "logits [N,10], no softmax; classes " + ", ".join(CLASSES)}
    if info:
        meta.update({k: str(v) for k, v in info.items() if k in ("params", "macs", "float_test_accuracy", "command")})
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "edgeq.models.train"
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))

    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    xs = preprocess(load_fmnist("test")[0][:8])
    with torch.no_grad():
        want = model(torch.from_numpy(xs)).numpy()
    got = np.concatenate([sess.run(None, {"input": xs[i:i + 1]})[0] for i in range(len(xs))])
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise RuntimeError(f"onnxruntime and torch disagree on {path.name}: max |diff| {err}")
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    tmp.replace(path)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(m.graph.node)} nodes, {bn} BatchNormalization, "
          f"IR {m.ir_version}, opset {m.opset_import[0].version}, ort max |diff| {err:.2e})")
    return path


def readme_table(results: dict) -> list[str]:
    """Markdown rows of models/README.md's table, one per trained model."""
    rows = []
    for name in sorted(results):
        r = results[name]
        rows.append(f"| {name} | {r['params']:,} | {r['macs']:,} | {r['float_test_accuracy'] * 100:.2f}% | "
                    f"{r['epochs']} | {r['train_seconds'] / 60:.1f} min ({r.get('threads', 1)} thread"
                    f"{'s' if r.get('threads', 1) > 1 else ''}) | {r.get('onnx_bytes', 0) / 1024:.0f} KB | "
                    f"`{r['command']}` |")
    return rows


def update_readme(readme: Path, results: dict) -> None:
    """Rewrite the table between the `<!-- table` and `<!-- /table -->` markers."""
    if not readme.is_file():
        return
    lines = readme.read_text().splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("<!-- table"))
        end = next(i for i, l in enumerate(lines) if l.startswith("<!-- /table"))
    except StopIteration:
        return
    lines[start + 3:end] = readme_table(results)      # keep marker, header and separator
    readme.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeq.models.train", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="all", help=f"one of {sorted(nets.NETS)} or 'all'")
    ap.add_argument("--epochs", type=int, default=None, help=f"default per model: {DEFAULT_EPOCHS}")
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="output folder (default: the models/ folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01, help="OneCycle peak learning rate")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N training images only (smoke test)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: best on a busy shared machine)")
    args = ap.parse_args(argv)

    names = sorted(nets.NETS) if args.model == "all" else [args.model]
    for n in names:
        if n not in nets.NETS:
            ap.error(f"unknown model {n!r}; choose from {sorted(nets.NETS)} or 'all'")
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / RESULTS_FILE
    for name in names:
        epochs = args.epochs or DEFAULT_EPOCHS[name]
        model, info = train_one(name, epochs, seed=args.seed, batch=args.batch, max_lr=args.lr, limit=args.limit,
                                threads=args.threads)
        path = export_onnx(model, args.out / f"fmnist_{name}.onnx", info)
        info["onnx_bytes"] = path.stat().st_size
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        results[name] = info
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        update_readme(args.out / "README.md", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
