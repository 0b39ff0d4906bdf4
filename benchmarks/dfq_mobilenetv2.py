"""Data-free quantization on MobileNetV2 (ImageNet): int8 fidelity to the float model.

    python benchmarks/dfq_mobilenetv2.py [--n 256] [--calib 64] [--only per-tensor]

Rows: float (torch, the reference), the float graph after CLE (ReLU6 became ReLU: what
CLE costs before any rounding), edgeq int8 naive / + CLE (with high-bias absorption, as
`edgeq compile --equalize` runs it) / + CLE + bias correction (empirical, data-free), and
onnxruntime's quantize_static (QDQ, MinMax, int8 activations and weights, after
quant_pre_process, on the same calibration images) — each with per-tensor and per-channel
weights. The edgeq rows run the real pipeline: import_onnx -> the compile float passes
(edgeq.driver.pipeline.float_passes) -> calibrate -> quantize -> the integer reference.

Metrics against the float logits on `--n` natural images (models/natural_images.py,
seed 0; calibration uses seed 1, disjoint crops):
  top-1    : quantized top-1 == float top-1
  top-5    : float top-1 is within the quantized top-5
  SQNR     : 10 log10(sum float^2 / sum (q - float)^2) over all logits, dB
  conf.    : top-1 agreement on the inputs where the float top-1 probability is > 0.5
Each row's logits are cached (EDGEQ_CACHE/dfq_bench) so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

BATCH = 16  # images per integer-reference call: bounds memory at 224x224


def float_logits(x: np.ndarray) -> np.ndarray:
    import torch
    from edgeq.models.mobilenetv2_imagenet import load_pretrained
    model = load_pretrained()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + BATCH])).numpy()
                               for i in range(0, len(x), BATCH)])


def edgeq_graphs(onnx_path: Path, granularity: str, equalize: bool, bc_mode: str | None,
                 calib: np.ndarray, relu6: str | None = None, unguarded: bool = False):
    """The float graph after the compile passes and its int8 graph. The passes run as
    `edgeq compile` runs them: with per-channel weights guarded (passes/dfq_guard.py) on
    the calibration images, unless `unguarded`."""
    from edgeq.calibration.calibrate import calibrate
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from edgeq.quantization.quantize import quantize
    from edgeq.driver.pipeline import CompileOptions, float_passes, run_float_passes

    opts = CompileOptions(weight_granularity=granularity, equalize=equalize,
                          bias_correction=bc_mode is not None, progress=False,
                          dfq_guard=False if unguarded else None)
    graph = import_onnx(onnx_path)
    name = graph.inputs[0]
    ctx = PassContext(calib=[{name: calib[i:i + 1]} for i in range(len(calib))],
                      options={"weight_granularity": granularity, "weight_bits": 8,
                               "bias_correction_mode": bc_mode or "auto"})
    if relu6:
        ctx.options["cle_relu6"] = relu6
    graph = run_float_passes(graph, ctx, float_passes(opts))
    for r in ctx.log:
        if r["pass"] == "dfq_guard":  # the guard's decisions, for the record
            print(f"  dfq_guard {granularity}: {r}", file=sys.stderr, flush=True)
    ranges = calibrate(graph, {name: calib}, progress=False)
    return graph, quantize(graph, ranges, weight_granularity=granularity, weight_bits=8)


def run_int8(qgraph, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    name, out = qgraph.inputs[0], qgraph.outputs[0]
    ys = []
    for i in range(0, len(x), batch):
        q = run_reference(qgraph, quantize_inputs(qgraph, {name: x[i:i + batch]}))
        ys.append(dequantize_outputs(qgraph, q)[out])
    return np.concatenate(ys)


def run_float_graph(graph, x: np.ndarray) -> np.ndarray:
    from edgeq.floatexec.executor import run_float
    name = graph.inputs[0]
    return np.concatenate([run_float(graph, {name: x[i:i + BATCH]})[graph.outputs[0]]
                           for i in range(0, len(x), BATCH)])


def ort_logits(onnx_path: Path, per_channel: bool, calib: np.ndarray, x: np.ndarray,
               work: Path) -> np.ndarray:
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    pre = work / f"mnv2.pre.{'pc' if per_channel else 'pt'}.onnx"  # one per process
    if not pre.is_file():
        quant_pre_process(str(onnx_path), str(pre))
    qpath = work / f"mnv2.qdq.{'pc' if per_channel else 'pt'}.onnx"
    quantize_static(str(pre), str(qpath), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(qpath), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def metrics(y: np.ndarray, ref: np.ndarray) -> dict:
    top1 = ref.argmax(1)
    p = np.exp(ref - ref.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf = p.max(1) > 0.5
    agree = y.argmax(1) == top1
    top5 = np.any(np.argsort(-y, axis=1)[:, :5] == top1[:, None], axis=1)
    err = np.sum((y.astype(np.float64) - ref) ** 2)
    sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / err) if err > 0 else np.inf
    return {"top1": agree.mean(), "top5": top5.mean(), "sqnr": sqnr,
            "conf": agree[conf].mean() if conf.any() else np.nan, "n_conf": int(conf.sum())}


# (row label, granularity, equalize, bias-correction mode or None, ReLU6 policy of CLE);
# each process (--only) runs the rows the issue's claims rest on first.
EDGEQ_ROWS = [
    ("edgeq naive", "per-tensor", False, None, None),
    ("edgeq + CLE + BC (empirical)", "per-tensor", True, "empirical", "bounded"),
    ("edgeq + CLE + BC (data-free)", "per-tensor", True, "data-free", "bounded"),
    ("edgeq + CLE", "per-tensor", True, None, "bounded"),
    ("edgeq + CLE(ReLU6->ReLU) + BC (empirical)", "per-tensor", True, "empirical", "relu"),
    ("edgeq + CLE(ReLU6->ReLU)", "per-tensor", True, None, "relu"),
    ("edgeq naive", "per-channel", False, None, None),
    ("edgeq + BC (empirical), no CLE", "per-channel", False, "empirical", None),
    ("edgeq + CLE + BC (empirical)", "per-channel", True, "empirical", "bounded"),
    ("edgeq + CLE + BC (data-free)", "per-channel", True, "data-free", "bounded"),
    ("edgeq + CLE + BC (empirical), unguarded", "per-channel", True, "empirical", "bounded"),
    ("edgeq + CLE(ReLU6->ReLU) + BC (empirical)", "per-channel", True, "empirical", "relu"),
]


# Rows kept out of the default run (measured once, in docs/dfq.md; --diagnostics).
DIAGNOSTIC_ROWS = {("edgeq + CLE", "per-tensor"),
                   ("edgeq + CLE(ReLU6->ReLU) + BC (empirical)", "per-tensor"),
                   ("edgeq + CLE(ReLU6->ReLU)", "per-tensor"),
                   ("edgeq + CLE(ReLU6->ReLU) + BC (empirical)", "per-channel"),
                   ("edgeq + CLE + BC (data-free)", "per-channel"),
                   ("edgeq + CLE + BC (data-free)", "per-tensor"),
                   ("edgeq + BC (empirical), no CLE", "per-channel"),
                   ("edgeq + CLE + BC (empirical), unguarded", "per-channel")}


FMNIST_ROWS = [r for r in EDGEQ_ROWS if r[4] != "relu"]


def fmnist(limit: int, only: str | None = None, diagnostics: bool = False) -> None:
    """The Fashion-MNIST MobileNetV2-style reference model: top-1 against the labels
    (calibration: the first 512 training images, like benchmarks/fmnist_accuracy.py), and
    the fidelity metrics against the float model's outputs."""
    from edgeq.floatexec.executor import run_float
    from edgeq.models.fmnist import load_fmnist, preprocess
    from edgeq.importer.load import import_onnx

    path = Path(__file__).resolve().parents[1] / "models" / "fmnist_mobilenetv2.onnx"
    calib = preprocess(load_fmnist("train")[0][:512])
    test_x, test_y = load_fmnist("test")
    x, y = preprocess(test_x[:limit]), test_y[:limit]
    g = import_onnx(path)
    ref = run_float(g, {g.inputs[0]: x})[g.outputs[0]]
    f_acc = np.mean(ref.argmax(1) == y) * 100
    print(f"\nFashion-MNIST MobileNetV2-style ({path.name}), {len(y)} test images "
          f"(float-confident: {metrics(ref, ref)['n_conf']})\n")
    print("| model | weights | top-1 (labels) | vs float (points) | top-1 agree | SQNR dB | "
          "conf. top-1 agree |\n|---|---|---|---|---|---|---|")
    print(f"| float | - | {f_acc:.2f}% | | | | |")
    results = []
    for label, gran, eq, bc, relu6 in FMNIST_ROWS:
        if (only and gran != only) or (not diagnostics and (label, gran) in DIAGNOSTIC_ROWS):
            continue
        _, q = edgeq_graphs(path, gran, eq, bc, calib, relu6, "unguarded" in label)
        logits = run_int8(q, x, batch=500)
        acc = np.mean(logits.argmax(1) == y) * 100
        m = metrics(logits, ref)
        results.append((label, gran, logits))
        print(f"| {label} | {gran} | {acc:.2f}% | {acc - f_acc:+.2f} | {100 * m['top1']:.2f}% | "
              f"{m['sqnr']:.1f} | {100 * m['conf']:.2f}% |", flush=True)
    never_worse_check(results, ref)


def never_worse_check(rows, ref: np.ndarray) -> bool:
    """The claim: with per-channel weights, the passes (as `edgeq compile` runs them, i.e.
    guarded) never make top-1 agreement, confident agreement or SQNR worse than naive."""
    base = [y for label, gran, y in rows if gran == "per-channel" and label == "edgeq naive"]
    if not base:
        return True
    b = metrics(base[0], ref)
    ok_all = True
    for label, gran, y in rows:
        if gran != "per-channel" or not label.startswith("edgeq +") or "unguarded" in label:
            continue
        m = metrics(y, ref)
        worse = [k for k in ("top1", "conf", "sqnr") if m[k] < b[k]]
        ok_all &= not worse
        print(f"never-worse check, per-channel, {label} vs naive: "
              f"top-1 {100 * m['top1']:.2f}% vs {100 * b['top1']:.2f}%, "
              f"conf. {100 * m['conf']:.2f}% vs {100 * b['conf']:.2f}%, "
              f"SQNR {m['sqnr']:.2f} vs {b['sqnr']:.2f} dB: "
              f"{'PASS' if not worse else 'FAIL (worse: ' + ', '.join(worse) + ')'}")
    print(f"never-worse check (per-channel, all rows): {'PASS' if ok_all else 'FAIL'}")
    return ok_all


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="evaluation images")
    ap.add_argument("--calib", type=int, default=64, help="calibration images")
    ap.add_argument("--only", choices=["per-tensor", "per-channel"], help="one granularity")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--diagnostics", action="store_true",
                    help="also the diagnostic rows (CLE alone, the ReLU6->ReLU policy)")
    ap.add_argument("--cached-only", action="store_true",
                    help="print the rows already computed (e.g. by runs split with --only)")
    ap.add_argument("--fmnist", type=int, metavar="N", default=0,
                    help="instead: the Fashion-MNIST MobileNetV2-style model on N test images")
    args = ap.parse_args(argv)
    if args.fmnist:
        return fmnist(args.fmnist, args.only, args.diagnostics)

    from edgeq.models.mobilenetv2_imagenet import cache_dir, export_onnx
    from edgeq.models.natural_images import natural_images

    work = cache_dir() / "dfq_bench"
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx()
    x = natural_images(args.n, seed=0)
    calib = natural_images(args.calib, seed=1)
    ref = float_logits(x)
    tag = f"n{args.n}_c{args.calib}"
    if not (work / f"{tag}_inputs.npz").is_file():  # for benchmarks/dfq_aimet.py
        np.savez(work / f"{tag}_inputs.npz", x=x, calib=calib)

    def cached(key: str, fn):
        f = work / f"{tag}_{key}.npy"
        if f.is_file():
            return np.load(f)
        if args.cached_only:
            return None
        t0 = time.perf_counter()
        y = fn()
        np.save(f, y)
        print(f"  {key}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return y

    ort_rows = []  # first: quick, and the baseline the issue's claims compare with
    if not args.no_ort:
        for gran in ("per-tensor", "per-channel"):
            if args.only and gran != args.only:
                continue
            try:
                y = cached(f"ort_{gran}", lambda gran=gran: ort_logits(
                    onnx_path, gran == "per-channel", calib, x, work))
            except Exception as e:  # the edgeq rows are still worth having
                print(f"  onnxruntime {gran} failed: {e}", file=sys.stderr, flush=True)
                continue
            ort_rows.append(("onnxruntime QDQ (quantize_static)", gran, y))

    rows = [("float (torch, ReLU6)", "-", ref)]
    cle_float = {}
    for label, gran, eq, bc, relu6 in EDGEQ_ROWS:
        if args.only and gran != args.only:
            continue
        if not args.diagnostics and (label, gran) in DIAGNOSTIC_ROWS:
            continue
        key = f"{label}_{gran}_{relu6}".replace(" ", "_").replace("(", "").replace(")", "")
        key = key.replace("+", "p").replace(">", "").replace(",", "")
        holder = {}

        def build(gran=gran, eq=eq, bc=bc, relu6=relu6):
            holder["g"], holder["q"] = edgeq_graphs(onnx_path, gran, eq, bc, calib, relu6,
                                                    "unguarded" in label)
            return run_int8(holder["q"], x)

        y = cached(key, build)
        if eq and bc is None and relu6 not in cle_float:  # same float graph for both granularities
            cle_float[relu6] = cached(f"cle_float_{relu6}", lambda: run_float_graph(
                holder["g"] if "g" in holder else edgeq_graphs(onnx_path, gran, True, None, calib, relu6)[0], x))
            rows.append((f"float after CLE ({relu6}) + absorption", "-", cle_float[relu6]))
        rows.append((label, gran, y))
    rows += ort_rows
    for gran, cle in (("pt", "naive"), ("pt", "cle"), ("pc", "naive"), ("pc", "cle")):
        f = work / f"{tag}_aimet_{gran}_{cle}.npy"  # written by benchmarks/dfq_aimet.py
        if f.is_file():
            rows.append((f"aimet-onnx 2.42 QuantSim{' + CLE' if cle == 'cle' else ''}",
                         "per-tensor" if gran == "pt" else "per-channel", np.load(f)))
    print(f"\nMobileNetV2 ImageNet, {args.n} natural images (float-confident: "
          f"{metrics(ref, ref)['n_conf']}), {args.calib} calibration images, int8 activations\n")
    print("| model | weights | top-1 agree | top-5 agree | SQNR dB | conf. top-1 agree |")
    print("|---|---|---|---|---|---|")
    for label, gran, y in rows:
        if y is None:
            continue
        m = metrics(y, ref)
        print(f"| {label} | {gran} | {100 * m['top1']:.1f}% | {100 * m['top5']:.1f}% | "
              f"{m['sqnr']:.1f} | {100 * m['conf']:.1f}% |")
    print()
    never_worse_check([r for r in rows if r[0].startswith("edgeq")], ref)


if __name__ == "__main__":
    main()
