"""SRAM, flash and instructions of the training firmware: the 256 KB proof (issue 19).

    python benchmarks/train_memory.py                          # the table in docs/training.md
    python benchmarks/train_memory.py --specs last:2 --target cortex-m7
    python benchmarks/train_memory.py --specs last:2 --momentum-specs ""     # no momentum rows

For each spec it runs, as a user would,

    edgeq compile models/fmnist_dscnn_heldout89.onnx --target cortex-m7 --calib CALIB.npy \\
        --train SPEC --train-budget 256KiB -o DIR

(the compile fails if the training firmware does not fit the budget), and for each of
--momentum-specs the same with `--train-momentum 0.9` (one int32 velocity per trained
weight and bias, in SRAM), and reads DIR/report.json:
the training firmware fw_train.elf is linked against the part, run on QEMU, its stack painted
and measured, its instructions per `edgeq_model_train_step` counted by the TCG plugin (exact
instructions, not cycles), and 4 of its steps checked byte for byte against the reference.
CALIB: 256 training images of the known classes, as in benchmarks/transfer_fmnist.py.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "fmnist_dscnn_heldout89.onnx"
# MCUNetV3 (Lin et al., NeurIPS 2022), STM32F746, sparse update + operator reordering: peak
# training memory (KB) and time per step; their figures, quoted, not measured here.
MCUNETV3 = [("MobileNetV2-w0.35", "141 KB", "335 KB"), ("ProxylessNAS-w0.3", "135 KB", "326 KB"),
            ("MCUNet", "173 KB", "560 KB")]  # (network, with operator reordering, without)


def kib(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default="bias,last:1,last:2,last:3,last:5,auto")
    ap.add_argument("--target", default="cortex-m7")
    ap.add_argument("--budget", default="256KiB")
    ap.add_argument("--momentum-specs", default="last:2", help="specs also built with --train-momentum 0.9")
    args = ap.parse_args(argv)
    from edgeq.models.fmnist import load_fmnist, preprocess
    xtr, ytr = load_fmnist("train")
    calib = preprocess(xtr[np.flatnonzero(~np.isin(ytr, (8, 9)))[:256]])
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-memory-") as tmp:
        np.save(Path(tmp) / "calib.npy", calib)
        runs = [(s, []) for s in args.specs.split(",") if s] + \
            [(s, ["--train-momentum", "0.9"]) for s in args.momentum_specs.split(",") if s]
        for spec, extra in runs:
            out = Path(tmp) / (spec.replace(":", "_") + ("_momentum" if extra else ""))
            cmd = ["compile", str(MODEL), "--target", args.target, "--calib", str(Path(tmp) / "calib.npy"),
                   "--train", spec, "--train-budget", args.budget, *extra, "-o", str(out), "-q"]
            print("$ edgeq " + " ".join(cmd).replace(tmp, "TMP"), flush=True)
            res = subprocess.run([sys.executable, "-m", "edgeq.cli", *cmd], capture_output=True, text=True)
            label = spec + (", momentum 0.9" if extra else "")
            if res.returncode:
                print(res.stderr.strip())
                rows.append((label, None))
                continue
            rows.append((label, json.loads((out / "report.json").read_text())))
    print(f"\n{args.target} training firmware (fw_train.elf), budget {args.budget}; KiB = 1024 bytes\n")
    print("| spec | updated | training arena | of it gradients (peak) | trained params (SRAM) | other static | "
          "stack (measured) | SRAM total | flash | instructions / step | check |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for spec, rep in rows:
        if rep is None:
            print(f"| {spec} | does not fit (see the error above) | | | | | | | | | |")
            continue
        t = rep["training"]
        m = t["memory"]
        other = t["static_ram_bytes"] - m["arena_bytes"] - t["state_sram_bytes"]
        moved = f"{sum(u['weights'] for u in t['updates'])} weight layers, {sum(u['bias'] for u in t['updates'])} biases"
        print(f"| {spec} | {moved} | {kib(m['arena_bytes'])} | {kib(m['gradient_bytes'])} | {kib(t['state_sram_bytes'])} "
              f"| {kib(other)} | {kib(t['stack_bytes'])} | **{kib(t['sram_bytes'])}** | {kib(t['flash_bytes'])} | "
              f"{t['instructions_per_step']:,} | {'bit-exact' if t['self_check']['passed'] else 'FAILED'} |")
    print("\nSRAM total = static RAM of fw_train.elf (.data + .bss: the training arena, the trained "
          "parameters, residuals and momentum velocities, the runtime's data) + the measured stack peak. Not counted: the "
          "1 KiB heap reserve the harness's semihosting stdio uses (a product build has no semihosting).")
    print("MCUNetV3 (quoted from the paper, STM32F746, not measured here): peak training memory "
          + "; ".join(f"{n} {a} ({b} without reordering)" for n, a, b in MCUNETV3) + "; 373-546 ms per step.")
    return 0 if all(rep is not None for _, rep in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
