"""Fidelity of int8 MLPerf Tiny models against their float originals: edgeq vs its peers.

    python benchmarks/mlperf_fidelity.py [--models kws01,ic01,...] [--granularity per-channel]
                                         [--photos disjoint|shared] [--calib-percentile P | --defaults]

For each model, on the same realistic inputs (edgeq.models.mlperf_inputs, eval split) and
with the same calibration data (calib split): output SQNR against float and top-1
agreement (classifiers) of
  edgeq int8 (integer reference), the official MLPerf int8 TFLite (LiteRT reference
  kernels), and onnxruntime quantize_static (QDQ, per-channel).
Then edgeq paired against the better peer on the same samples (benchmarks/paired.py): the
SQNR gap with a 95% bootstrap interval over samples and, for classifiers, the samples whose
top-1 only one of the two gets right, with the exact McNemar p. A gap whose interval spans
zero is a difference the samples cannot resolve.

Which --calib-percentile edgeq gets is chosen per model without the evaluation split:
with the disjoint photo split, benchmarks/mlperf_dev.py holds out one calibration photo
(or, for the audio models, a quarter of the windows) at a time and
`pick_percentile` keeps the default or 99.999, whichever is closer to float there
(docs/fidelity.md, sixth session). With `--photos shared` every model gets the defaults.
`--defaults` compiles every model with the defaults; `--calib-percentile P` gives every
model P.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlperf_common import CLASSIFIERS, MODELS, N_CALIB  # noqa: E402
from mlperf_dev import pick_percentile  # noqa: E402
from paired import mcnemar, sqnr_gap  # noqa: E402
from peers import ort_quantize_static, run_onnx, run_tflite_int8, sqnr_db, top1_agreement  # noqa: E402

# Evaluation samples: the image models get 512 photo crops. With 128, top-1 agreement moved
# in steps of 0.8 points and one borderline crop decided a row (ic01_large on 2026-11-29: the
# 93.0% vs 96.9% gap had McNemar p = 0.23). The audio models have fewer real samples.
N_EVAL = 512


def edgeq_int8(model: Path, calib: np.ndarray, x: np.ndarray, granularity: str,
               percentile: float | None = None) -> np.ndarray:
    import edgeq
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    result = edgeq.compile(model, target="reference", calib=calib, weight_granularity=granularity,
                           calib_percentile=percentile, progress=False)
    q = result.qgraph
    feeds = quantize_inputs(q, {q.inputs[0]: x})
    return dequantize_outputs(q, run_reference(q, feeds))[q.outputs[0]]


def percentile_label(p: float | None) -> str:
    return "default" if p is None else f"{p:g}"


def edgeq_percentile(name: str, photos: str, override: float | None, defaults: bool,
                     pick=pick_percentile) -> tuple[float | None, str]:
    """The --calib-percentile edgeq gets for this model (None: the default), and why."""
    if override is not None:
        return override, "given"
    if defaults or photos != "disjoint":
        return None, "defaults"
    best, scores = pick(name)
    return best, "held out: " + ", ".join(f"{percentile_label(p)} {s:.2f} dB" for p, s in scores.items())


def evaluate(name: str, granularity: str, photos: str = "disjoint", n_eval: int = N_EVAL,
             percentile: float | None = None, why: str = "") -> dict:
    from edgeq.models.mlperf_inputs import mlperf_dir, mlperf_inputs
    d = mlperf_dir(name)
    x = mlperf_inputs(name, "eval", n=n_eval, photos=photos)
    calib = mlperf_inputs(name, "calib", n=N_CALIB, photos=photos)
    ref = run_onnx(d / "model.onnx", x)
    outs = {
        "edgeq": edgeq_int8(d / "model.onnx", calib, x, granularity, percentile),
        "tflite (official int8)": run_tflite_int8(d / "reference_int8.tflite", x),
        "onnxruntime QDQ": run_onnx(ort_quantize_static(d / "model.onnx", calib), x),
    }
    row = {"model": name, "n": len(x), "percentile": percentile, "why": why}
    for k, y in outs.items():
        row[f"{k} sqnr"] = sqnr_db(ref, y.reshape(ref.shape))
        if name in CLASSIFIERS:
            row[f"{k} top1"] = top1_agreement(ref, y.reshape(ref.shape))
    peer = max(("tflite (official int8)", "onnxruntime QDQ"), key=lambda k: row[f"{k} sqnr"])
    mine, theirs = outs["edgeq"].reshape(ref.shape), outs[peer].reshape(ref.shape)
    row["paired"] = {"peer": peer, "sqnr gap": sqnr_gap(ref, mine, theirs)}
    if name in CLASSIFIERS:
        want = ref.reshape(len(ref), -1).argmax(1)
        row["paired"]["top1"] = mcnemar(mine.reshape(len(ref), -1).argmax(1) == want,
                                        theirs.reshape(len(ref), -1).argmax(1) == want)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--granularity", default="per-channel", choices=["per-channel", "per-tensor"])
    ap.add_argument("--photos", default="disjoint", choices=["disjoint", "shared"],
                    help="image models: calib and eval crops from disjoint photos (default) or "
                         "from the same fourteen photos (edgeq.models.mlperf_inputs)")
    ap.add_argument("--n-eval", type=int, default=N_EVAL, help="evaluation samples (image models; "
                    "the others have fewer real samples)")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--calib-percentile", type=float, default=None,
                     help="edgeq's --calib-percentile for every model")
    how.add_argument("--defaults", action="store_true", help="compile every model with edgeq's defaults")
    args = ap.parse_args()
    rows = [evaluate(m, args.granularity, args.photos, args.n_eval,
                     *edgeq_percentile(m, args.photos, args.calib_percentile, args.defaults))
            for m in args.models.split(",")]
    peers = ["edgeq", "tflite (official int8)", "onnxruntime QDQ"]
    print(f"\nSQNR vs float (dB, higher is better) and top-1 agreement with float; edgeq weights "
          f"{args.granularity}; image calib/eval photos {args.photos}; edgeq's --calib-percentile per row")
    print(f"{'model':<11}{'n':>5}{'pct':>8}  " + "  ".join(f"{p:>28}" for p in peers) + "  edgeq >= best peer")
    worst = True
    for r in rows:
        cells = []
        for p in peers:
            s = f"{r[f'{p} sqnr']:6.2f} dB"
            if f"{p} top1" in r:
                s += f" / {r[f'{p} top1'] * 100:5.1f}%"
            cells.append(f"{s:>28}")
        best = max(r["tflite (official int8) sqnr"], r["onnxruntime QDQ sqnr"])
        ok = r["edgeq sqnr"] >= best
        if "edgeq top1" in r:
            ok = ok and r["edgeq top1"] >= max(r["tflite (official int8) top1"], r["onnxruntime QDQ top1"])
        worst &= ok
        print(f"{r['model']:<11}{r['n']:>5}{percentile_label(r['percentile']):>8}  " + "  ".join(cells)
              + f"  {'yes' if ok else 'NO'}")
    print("\nedgeq paired against the better peer (by SQNR) on the same samples:")
    for r in rows:
        pr = r["paired"]
        gap, lo, hi = pr["sqnr gap"]
        line = f"{r['model']:<11} vs {pr['peer']:<22} SQNR gap {gap:+6.2f} dB, 95% interval [{lo:+.2f}, {hi:+.2f}]"
        if "top1" in pr:
            a_only, b_only, p = pr["top1"]
            line += f"; top-1 right only for edgeq {a_only}, only for the peer {b_only} (McNemar p = {p:.2g})"
        print(line)
    print("\nedgeq's --calib-percentile per model:")
    for r in rows:
        print(f"{r['model']:<11} {percentile_label(r['percentile']):<8} ({r['why']})")
    return 0 if worst else 1


if __name__ == "__main__":
    sys.exit(main())
