"""Instructions per inference under qemu-aarch64: edgeq beside LiteRT and onnxruntime.

For each model, on one thread of an emulated Cortex-A76 (`qemu-aarch64 -cpu cortex-a76`),
instructions counted by edgeq's QEMU plugin (targets/plugin/insn_count.c). These are
instructions, not cycles: QEMU models no pipeline, cache or memory timing.

- LiteRT XNNPACK: ai-edge-litert 2.3 with its default delegate (XNNPACK), num_threads=1;
- LiteRT builtin: the same with OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES (TFLite's
  optimized builtin kernels, no delegate);
- ORT QDQ: onnxruntime 1.32 on the model quantized by onnxruntime's quantize_static (QDQ,
  per-channel int8 weights, int8 activations), calibrated on the same samples as edgeq.
  The three peers run in an arm64 Python 3.11 (bash scripts/aarch64_peers.sh) and are
  counted as (instructions of 1 + N invokes) - (instructions of 1 + 0 invokes), / N: the
  interpreter's start-up, model loading and the warm-up invoke cancel out; the Python
  binding's per-invoke cost stays in (the `empty` row measures it: a 1-element model).
  Repeated identical runs differ by a few million instructions (Python start-up), so N
  is chosen for >= 200 M instructions of invokes: the error is under about 2%.
- edgeq C / edgeq TVM: the static binary of the `arm64` target (targets/arm64.py), built
  as `edgeq compile --target arm64 --cpu CPU --scratch always --lowering c` (edgeq's
  generated C, the same model.c as the host and Cortex-M targets, with runtime_c) and
  `--lowering tvm` (TVM kernels for conv, gemm, add and pools, C kernels for the rest),
  `aarch64-linux-gnu-gcc -O3 -mcpu=... -static`. Counted with `edgeq profile --device
  qemu`'s code on the peers' input: one inference between the layer marks (exact, one
  run); checked bit-exact against the integer reference with `edgeq run`'s code.

LiteRT runs the official int8 .tflite of each MLPerf Tiny model, and edgeq's own TFLite
export (edgeq.export.tflite) of the same quantized graph for the Fashion-MNIST nets and
MobileNetV2. Inputs: one real sample per model (mlperf_inputs "eval", a Fashion-MNIST
test image, a natural photo for MobileNetV2).

    python benchmarks/arm64_speed.py [--models kws01,ic01] [--cpu cortex-a76] [--json out.json]
                                     [--skip peers,c --reuse earlier.json]
                                     [--peer-models kws01,ad01 --reuse earlier.json]

--skip leaves columns out; with --reuse, a skipped column takes its numbers from an
earlier run's --json, marked `*` in the table (the peers take about an hour for every
model on an idle 2-core machine: rerun them only when their versions or inputs change;
--peer-models reruns them on a few models to check that the earlier numbers still hold).

Exit status 1 if an edgeq build is not bit-exact.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MLPERF = ["kws01", "ic01", "vww01", "ad01", "sww01", "ic01_large"]
OTHERS = ["mobilenetv2", "fmnist_dscnn", "fmnist_mobilenetv2", "fmnist_resnet8"]
PEERS = ["litert-xnnpack", "litert-builtin", "ort"]
MIN_INVOKE_INSNS = 200_000_000
DEFAULT_ROOT = Path(os.environ.get("EDGEQ_AARCH64_ROOT", Path.home() / ".cache/edgeq/aarch64-peers"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the models -------------------------------------------------------------------------

def load_model(name: str, work: Path) -> dict:
    """The quantized graph, the float ONNX, a .tflite for LiteRT, calibration and one input."""
    import edgeq
    from edgeq.export.tflite import export_tflite
    if name in MLPERF:
        from edgeq.models.mlperf_inputs import mlperf_dir, mlperf_inputs
        folder = mlperf_dir(name)
        onnx_path, calib = folder / "model.onnx", mlperf_inputs(name, "calib", n=32)
        x = mlperf_inputs(name, "eval", n=1)
        tflite = folder / "reference_int8.tflite"
    elif name == "mobilenetv2":
        from edgeq.models.mobilenetv2_imagenet import export_onnx
        from edgeq.models.natural_images import natural_images
        onnx_path, calib, x, tflite = export_onnx(), natural_images(16, seed=1), natural_images(1, seed=0), None
    else:
        from edgeq.models.fmnist import load_fmnist, preprocess
        from edgeq.models.registry import model_path
        onnx_path = model_path(name.removeprefix("fmnist_"))
        calib = preprocess(load_fmnist("train")[0][:64])
        x, tflite = preprocess(load_fmnist("test")[0][:1]), None
    res = edgeq.compile(str(onnx_path), target="reference", calib=calib, calib_limit=len(calib))
    q = res.qgraph
    if tflite is None:
        tflite = work / f"{name}.tflite"
        tflite.write_bytes(export_tflite(q))
    return {"q": q, "onnx": Path(onnx_path), "tflite": Path(tflite), "calib": calib, "x": x}


def empty_model(work: Path) -> dict:
    """A one-element Relu model: what a peer spends per invoke on anything but compute."""
    import onnx
    from onnx import TensorProto, helper
    import edgeq
    from edgeq.export.tflite import export_tflite
    g = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "empty",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = work / "empty.onnx"
    onnx.save(m, path)
    calib = np.linspace(-1, 1, 16, dtype=np.float32).reshape(16, 1)
    q = edgeq.compile(str(path), target="reference", calib=calib, calib_limit=16).qgraph
    tflite = work / "empty.tflite"
    tflite.write_bytes(export_tflite(q))
    return {"q": q, "onnx": path, "tflite": tflite, "calib": calib, "x": calib[:1]}


# ---- the peers under qemu-aarch64 ----------------------------------------------------------

def peer_input(kind: str, model: dict, work: Path, name: str) -> Path:
    """The input file the runner feeds: int8 for LiteRT (the .tflite's input quantization),
    float32 for onnxruntime."""
    x = np.asarray(model["x"], np.float32)
    if kind.startswith("litert"):
        from ai_edge_litert.interpreter import Interpreter
        d = Interpreter(model_path=str(model["tflite"])).get_input_details()[0]
        scale, zp = d["quantization"]
        if np.dtype(d["dtype"]) != np.int8:
            x = x.reshape(d["shape"])
        else:
            x = np.clip(np.round(x.reshape(-1) / scale) + zp, -128, 127).astype(np.int8).reshape(d["shape"])
    path = work / f"{name}_{kind}.npy"
    np.save(path, x)
    return path


def qemu_count(cmd: list[str], env: dict, plugin: Path, timeout: float = 3600) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "count.txt"
        full = ["qemu-aarch64", "-cpu", "cortex-a76", "-plugin", f"{plugin},out={out}"] + cmd
        res = subprocess.run(full, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[-4:])} failed: {res.stderr.strip()[-800:]}")
        return int(next(l.split()[1] for l in out.read_text().splitlines() if l.startswith("total")))


def peer_instructions(kind: str, model_path: Path, x_path: Path, root: Path, plugin: Path) -> dict:
    env = {"QEMU_LD_PREFIX": str(root),
           "QEMU_SET_ENV": "LD_PRELOAD=/cpuinfo_shim.so,PYTHONPATH=/site,PYTHONHASHSEED=0"}
    runner = ROOT / "benchmarks" / "arm64" / "peer_run.py"

    def count(n: int) -> int:
        return qemu_count([str(root / "usr/bin/python3.11"), str(runner), kind, str(model_path),
                           str(x_path), str(n)], env, plugin)
    base, n = count(0), 10
    for _ in range(3):   # until the invokes outweigh the start-up noise
        per = (count(n) - base) / n
        if per * n >= MIN_INVOKE_INSNS or n >= 2000:
            break
        n = min(2000, math.ceil(1.2 * MIN_INVOKE_INSNS / max(per, 1)))
    return {"instructions": int(round(per)), "invokes": n}


# ---- edgeq's two lowerings -----------------------------------------------------------------

def edgeq_arm64(q, feeds: dict, want: dict, work: Path, cpu, lowering: str) -> dict:
    """The binary `edgeq compile --target arm64 --lowering LOWERING --cpu CPU --scratch
    always` writes for this quantized graph (the target's own build; test vectors left out
    of the count), counted with `edgeq profile --device qemu`'s code on the same input as
    the peers, and checked bit-exact with `edgeq run`'s code."""
    from edgeq.options import BuildOptions
    from edgeq.targets.arm64 import Arm64Target, count_instructions
    target = Arm64Target()
    report: dict = {}
    t0 = time.perf_counter()
    target.build(q, work, report, BuildOptions(test_vectors=None, scratch="always", cpu=cpu.name, lowering=lowering))
    build_s = time.perf_counter() - t0
    prof = count_instructions(work, feeds=feeds)
    got = target.run(work, feeds)
    exact = all(np.array_equal(got[k], want[k]) for k in q.outputs)
    ops = {n.name: n.op for n in q.nodes}
    return {"instructions": prof["instructions"], "exact": exact, "build_seconds": round(build_s, 1),
            "kernels": report["arm64"], "arena_bytes": report["arena_bytes"],
            "layers": [{"op": ops[l["name"]], "instructions": l["instructions"]} for l in prof["layers"]]}


# ---- the table ---------------------------------------------------------------------------

def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v / 1e6:.2f}M" if v >= 100_000 else f"{v / 1e3:.1f}k" if v >= 1000 else str(v)


def table(rows: list[dict]) -> str:
    """The markdown table; a number taken from an earlier run (--reuse) carries a `*`."""
    head = ("| model | LiteRT XNNPACK | LiteRT builtin | ORT QDQ | edgeq C | edgeq TVM | "
            "TVM / XNNPACK |\n|---|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        def cell(col: str) -> str:
            v = r.get(col, {}).get("instructions")
            return fmt(v) + ("*" if v is not None and col in r.get("reused", ()) else "")
        x = r.get("litert-xnnpack", {}).get("instructions")
        t = r.get("tvm", {}).get("instructions")
        ratio = f"{t / x:.2f}" if x and t and r["model"] != "empty" else "-"
        lines.append(f"| {r['model']} | {cell('litert-xnnpack')} | {cell('litert-builtin')} | {cell('ort')} | "
                     f"{cell('c')} | {cell('tvm')} | {ratio} |")
    return head + "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(["empty"] + MLPERF + OTHERS))
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="arm64 Python root (scripts/aarch64_peers.sh)")
    ap.add_argument("--skip", default="", help="comma list of columns to skip: peers,c,tvm")
    ap.add_argument("--json", type=Path, help="write every number (and per-layer TVM counts) here")
    ap.add_argument("--reuse", type=Path, help="earlier --json: the source of skipped columns")
    ap.add_argument("--peer-models", help="measure the peers only on these models (comma list); the "
                                          "others take theirs from --reuse (marked *)")
    ap.add_argument("--keep", type=Path, help="keep the build folders here")
    args = ap.parse_args(argv)
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    from edgeq.lower_tvm.cpus import get_cpu
    from edgeq.targets.profile_qemu import plugin_library
    cpu, skip = get_cpu(args.cpu), set(filter(None, args.skip.split(",")))
    if args.peer_models and not args.reuse:
        print("--peer-models needs --reuse (the other models' peer numbers)", file=sys.stderr)
        return 2
    if "peers" not in skip and not (args.root / "usr/bin/python3.11").exists():
        print(f"no arm64 Python in {args.root}: run `bash scripts/aarch64_peers.sh`", file=sys.stderr)
        return 2
    plugin = plugin_library()
    work_root = args.keep or Path(tempfile.mkdtemp(prefix="edgeq-arm64-"))
    rows, ok = [], True
    reused = {r["model"]: r for r in json.loads(args.reuse.read_text())} if args.reuse else {}
    for name in args.models.split(","):
        work = work_root / name
        work.mkdir(parents=True, exist_ok=True)
        log(f"[{name}] quantizing")
        model = empty_model(work) if name == "empty" else load_model(name, work)
        row = {"model": name}
        q = model["q"]
        feeds = quantize_inputs(q, {q.inputs[0]: np.asarray(model["x"], np.float32)})
        want = run_reference(q, feeds)
        if "peers" not in skip and (args.peer_models is None or name in args.peer_models.split(",")):
            from peers import ort_quantize_static
            qdq = ort_quantize_static(model["onnx"], np.asarray(model["calib"], np.float32))
            for kind in PEERS:
                log(f"[{name}] {kind}")
                path = qdq if kind == "ort" else model["tflite"]
                row[kind] = peer_instructions(kind, path, peer_input(kind, model, work, name), args.root, plugin)
        for lowering in ("c", "tvm"):
            if lowering not in skip:
                log(f"[{name}] edgeq {lowering}")
                row[lowering] = edgeq_arm64(q, feeds, want, work / lowering, cpu, lowering)
                ok &= row[lowering]["exact"]
        for col in ("litert-xnnpack", "litert-builtin", "ort", "c", "tvm"):
            if col not in row and col in reused.get(name, {}):
                row[col] = reused[name][col]
                row.setdefault("reused", []).append(col)
        rows.append(row)
        log(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "layers"})
                        for k, v in row.items()}))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print(f"Instructions per inference (not cycles), qemu-aarch64 -cpu {cpu.qemu_cpu}, one thread:\n")
    print(table(rows))
    if any(r.get("reused") for r in rows):
        print(f"\n* from {args.reuse.name}, an earlier run of this script (same inputs, same counting)")
    for r in rows:
        for col in ("c", "tvm"):
            if col in r and not r[col]["exact"]:
                print(f"NOT bit-exact: {r['model']} edgeq {col}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
