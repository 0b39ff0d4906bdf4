"""Pre-train a Fashion-MNIST network with some classes held out, for the transfer benchmark.

    python -m edgeq.models.pretrain_heldout                    # dscnn, classes 8 and 9 held out
    python -m edgeq.models.pretrain_heldout --heldout 8 9 --epochs 4 --out models/

The network (models/nets.py) keeps its 10-way head, but no image of a held-out class is
ever shown: their logits are only pushed down. The deployed int8 model therefore cannot
recognise them, and on-device training has to teach them (benchmarks/transfer_fmnist.py).
Same recipe as models/train.py (Adam, OneCycle peak 0.01, batch 128, random horizontal
flips, seed 0, one CPU thread, channels_last), exported the same way (train.export_onnx:
opset 13, Conv + BN kept, checked with onnxruntime). The ONNX metadata records the held-out
classes, the accuracy on the known classes' test images and the command.

Writes OUT/fmnist_<model>_heldout<classes>.onnx, e.g. models/fmnist_dscnn_heldout89.onnx.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from edgeq.models import nets
from edgeq.models.fmnist import load_fmnist, preprocess
from edgeq.models.train import MODELS_DIR, evaluate, export_onnx

DEFAULT_HELDOUT = (8, 9)  # Bag, Ankle boot: the last two labels, no other reason


def heldout_path(out: Path, model: str, heldout) -> Path:
    return out / f"fmnist_{model}_heldout{''.join(str(c) for c in sorted(heldout))}.onnx"


def pretrain(model: str, heldout, epochs: int, seed: int = 0, batch: int = 128, max_lr: float = 0.01,
             threads: int = 1, log=print) -> tuple[torch.nn.Module, dict]:
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    known_tr, known_te = ~np.isin(ytr, heldout), ~np.isin(yte, heldout)
    xtr_t, ytr_t = torch.from_numpy(preprocess(xtr[known_tr])), torch.from_numpy(ytr[known_tr])
    xte_t, yte_t = torch.from_numpy(preprocess(xte[known_te])), torch.from_numpy(yte[known_te])

    net = nets.build(model).to(memory_format=torch.channels_last)
    steps = (len(xtr_t) + batch - 1) // batch
    opt = torch.optim.Adam(net.parameters(), lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps)
    t0 = time.perf_counter()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr_t), generator=gen)
        loss_sum = 0.0
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            xb, yb = xtr_t[idx], ytr_t[idx]
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(yb)
        log(f"{model} epoch {ep + 1}/{epochs}: loss {loss_sum / len(xtr_t):.4f} ({time.perf_counter() - t0:.0f} s)")
    acc, _ = evaluate(net, xte_t, yte_t)
    net = net.to(memory_format=torch.contiguous_format).eval()
    held = " ".join(str(c) for c in sorted(heldout))
    info = {"heldout_classes": held, "known_class_test_accuracy": round(acc, 4),
            "train_seconds": round(time.perf_counter() - t0, 1), "epochs": epochs, "seed": seed,
            "command": f"python -m edgeq.models.pretrain_heldout --model {model} --heldout {held} "
                       f"--epochs {epochs} --seed {seed} --threads {threads}"}
    log(f"{model}: test accuracy on the {len(xte_t)} images of known classes {acc:.4f}")
    return net, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeq.models.pretrain_heldout", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="dscnn", choices=sorted(nets.NETS))
    ap.add_argument("--heldout", type=int, nargs="+", default=list(DEFAULT_HELDOUT))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    args = ap.parse_args(argv)
    if not args.heldout or min(args.heldout) < 0 or max(args.heldout) >= nets.NUM_CLASSES:
        ap.error(f"--heldout takes class numbers in 0..{nets.NUM_CLASSES - 1}")
    net, info = pretrain(args.model, tuple(args.heldout), args.epochs, args.seed, threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = export_onnx(net, heldout_path(args.out, args.model, args.heldout), info)
    add_metadata(path, {k: info[k] for k in ("heldout_classes", "known_class_test_accuracy")})
    return 0


def add_metadata(path: Path, extra: dict) -> None:
    """export_onnx records the command; the held-out classes and accuracy go beside it."""
    m = onnx.load(str(path))
    for k, v in extra.items():
        m.metadata_props.add(key=k, value=str(v))
    onnx.save(m, str(path))


if __name__ == "__main__":
    sys.exit(main())
