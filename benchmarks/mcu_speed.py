"""edgeq's Cortex-M kernels beside CMSIS-NN's, layer by layer, on the same weights,
quantization parameters and real activations, counted by edgeq's QEMU instruction plugin.

For each model (the six MLPerf Tiny models in ../shared/models/mlperf-tiny and the three
Fashion-MNIST networks in models/):

1. edgeq.compile(..., target=cpu) calibrated on 32 samples (mlperf_inputs "calib", or the
   first Fashion-MNIST training images): edgeq's quantized graph and firmware. One real
   held-out input (mlperf_inputs "eval" sample 0, or Fashion-MNIST test image 0) runs
   through the integer reference, which gives every layer's input and expected output.
2. "edgeq": the firmware `edgeq compile --target cpu` builds (default options: the
   channels-last DSP kernels on the M7, MVE on the M55, weights packed at compile time,
   the fastest memory plan that fits the part), per layer, with its layer marks (`edgeq
   profile`'s machinery) on that real input; its final outputs must equal the reference's.
   A relayout the compiler inserts between layouts counts with the layer that reads it.
3. "CMSIS-NN": ../shared/peers/cmsis-nn compiled into a cache folder for the CPU (-O2, as
   TFLite Micro builds it) and linked into a per-layer harness firmware (never into
   edgeq's): each layer's CMSIS-NN call (TFLite Micro's choice, benchmarks/mcu_cmsis.py) on
   the same input bytes (channels-last), between two marks; every output is compared with
   the reference (np.array_equal, transposed to NHWC).
4. "edgeq NHWC": edgeq's channels-last kernels (runtime_c/src/eq_nhwc_*.c, weights packed
   by edgeq.runtime_c.packing), called alone in the same kind of harness (the kernels
   without the compiler's glue); every output compared with the reference the same way. "NHWC specialised": the
   same, with the pointwise and depthwise 3x3 layers compiled from the always-inline kernel
   bodies against a `static const` params struct, as generated code will do (the shape
   becomes compile-time constants; benchmarks/mcu_nhwc.py spec_call).

Boards: cortex-m7 on QEMU mps2-an500 (DSP code paths) and cortex-m55 on mps3-an547 (CMSIS-NN's
and edgeq's MVE/Helium paths). QEMU counts instructions, not cycles. Code bytes: the sizes
of the kernel library functions that executed in the layer (libc and glue excluded).

    python benchmarks/mcu_speed.py [--models kws01,ic01] [--cpus cortex-m7] [--backends edgeq,cmsis,nhwc]
                                   [--layers] [--mix] [--json out.json] [--keep DIR]

Prints markdown tables; exits 1 when any measured output is not bit-exact.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

MLPERF_MODELS = ["kws01", "vww01", "ic01", "ad01", "sww01", "ic01_large"]
FMNIST_MODELS = ["fmnist_dscnn", "fmnist_mobilenetv2", "fmnist_resnet8"]
CPUS = ["cortex-m7", "cortex-m55"]
BACKENDS = ["edgeq", "nhwc", "spec", "cmsis"]
LABELS = {"edgeq": "edgeq", "nhwc": "edgeq NHWC", "spec": "NHWC specialised", "cmsis": "CMSIS-NN"}
N_CALIB = 32


def model_data(name: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """(ONNX file, calibration batch, one real held-out input)."""
    if name.startswith("fmnist_"):
        from edgeq.models.fmnist import load_fmnist, preprocess
        train, _ = load_fmnist("train")
        test, _ = load_fmnist("test")
        return ROOT / "models" / f"{name}.onnx", preprocess(train[:N_CALIB]), preprocess(test[:1])
    from edgeq.models.mlperf_inputs import mlperf_dir, mlperf_inputs
    return (mlperf_dir(name) / "model.onnx", mlperf_inputs(name, "calib", n=N_CALIB),
            mlperf_inputs(name, "eval", n=1))


def backend_for(kind: str, cpu: str, cache: Path, nhwc_isa: str | None = None):
    import mcu_harness as h
    if kind == "cmsis":
        import mcu_cmsis
        lib = mcu_cmsis.library(h.BOARDS[cpu][1], cache)
        return (h.Backend("CMSIS-NN", mcu_cmsis.HEADERS, "cmsis_nn_context ctx = {scratch, 0};", "ctx.size",
                          libraries=[lib], include_dirs=[mcu_cmsis.CMSIS / "Include"]),
                mcu_cmsis.layer_call, lib)
    import mcu_nhwc
    return mcu_nhwc.backend(cpu, cache, nhwc_isa, spec=kind == "spec")


def measure(name: str, cpus: list[str], kinds: list[str], work: Path, cache: Path, log,
            nhwc_isa: str | None = None) -> dict:
    import edgeq
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.targets import get_target
    from mcu_edgeq_fw import measure_firmware
    from mcu_harness import build_and_run
    from mcu_layers import model_layers
    from mcu_profile import kernel_code_bytes, layer_functions, library_functions, mix, spec_functions

    path, calib, x = model_data(name)
    result = {"model": name, "cpus": {}}
    layers = None
    for cpu in cpus:
        t0 = time.perf_counter()
        per = {}
        res = edgeq.compile(str(path), target=cpu, out_dir=work / f"{name}-{cpu}", calib=calib,
                            calib_limit=N_CALIB, progress=False)
        q = res.qgraph
        feeds = quantize_inputs(q, {q.inputs[0]: x})
        if layers is None:
            layers = model_layers(q, feeds)
            result["layers"] = [{"index": l.index, "kind": l.kind, "macs": l.macs, "name": l.node.name}
                                for l in layers]
        mve = cpu == "cortex-m55"
        if "edgeq" in kinds:
            fw = measure_firmware(get_target(cpu), res.out_dir, q, feeds)
            funcs = library_functions(fw.runtime_lib) | layer_functions(fw.elf)
            per["edgeq"] = {
                "bit_exact": fw.bit_exact,
                "layers": {i: {"instructions": n, "code": kernel_code_bytes(fw.elf, fw.profile[i], funcs),
                               "mix": mix(fw.elf, fw.profile[i], mve)} for i, n in fw.instructions.items()}}
        for kind in (k for k in kinds if k != "edgeq"):
            backend, call_for, lib = backend_for(kind, cpu, cache, nhwc_isa)
            calls = [(l.index, call_for(l, f"L{l.index}_")) for l in layers]
            run = build_and_run(backend, cpu, calls, work / f"{name}-{cpu}-{kind}")
            funcs = library_functions(lib) | spec_functions(run.elf)
            rows = {}
            for i, c in calls:
                if not c.supported:
                    rows[i] = {"instructions": None, "note": c.note}
                elif not c.runs:
                    rows[i] = {"instructions": 0, "code": {}, "mix": {}, "bit_exact": True}
                else:
                    rows[i] = {"instructions": run.instructions[i],
                               "code": kernel_code_bytes(run.elf, run.profile[i], funcs),
                               "mix": mix(run.elf, run.profile[i], mve),
                               "bit_exact": run.status.get(i) == 0 and np.array_equal(run.outputs[i], c.expected)}
            per[kind] = {"bit_exact": all(r.get("bit_exact", True) for r in rows.values()), "layers": rows}
        result["cpus"][cpu] = per
        log(f"{name} {cpu}: " + ", ".join(
            f"{LABELS[k]} {sum(r['instructions'] or 0 for r in v['layers'].values()):,}"
            f"{'' if v['bit_exact'] else ' NOT BIT-EXACT'}" for k, v in per.items())
            + f" ({time.perf_counter() - t0:.0f} s)")
    return result


# ---- tables ---------------------------------------------------------------------------------

def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def _ratio(a, b) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def _mpi(macs, n) -> str:
    return "-" if not n or not macs else f"{macs / n:.2f}"


def _code(v: dict | None) -> int | None:
    return None if v is None else sum(v.values())


def layer_table(r: dict, cpu: str, kinds: list[str]) -> str:
    per = r["cpus"][cpu]
    ks = [k for k in kinds if k in per]
    head = (["#", "op", "MACs"] + [f"{LABELS[k]} instr" for k in ks] +
            [f"{LABELS[k]} / CMSIS-NN" for k in ks if k != "cmsis" and "cmsis" in ks] +
            ["MAC/instr " + " / ".join(LABELS[k] for k in ks), "code B " + " / ".join(LABELS[k] for k in ks)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lay in r["layers"]:
        i = lay["index"]
        cells = [per[k]["layers"].get(i, {}) for k in ks]
        n = [c.get("instructions") for c in cells]
        row = [str(i), lay["kind"], _n(lay["macs"])] + [_n(v) for v in n]
        if "cmsis" in ks:
            base = n[ks.index("cmsis")]
            row += [_ratio(v, base) for k, v in zip(ks, n) if k != "cmsis"]
        row += [" / ".join(_mpi(lay["macs"], v) for v in n),
                " / ".join(_n(_code(c.get("code"))) for c in cells)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def totals(r: dict, cpu: str, kind: str) -> dict:
    rows = r["cpus"][cpu][kind]["layers"]
    n = [v["instructions"] for v in rows.values()]
    code: dict[str, int] = {}
    for v in rows.values():
        code.update(v.get("code") or {})
    mixes: dict[str, int] = {}
    for v in rows.values():
        for c, k in (v.get("mix") or {}).items():
            mixes[c] = mixes.get(c, 0) + k
    return {"instructions": None if any(v is None for v in n) else sum(n), "code": sum(code.values()),
            "mix": mixes, "bit_exact": r["cpus"][cpu][kind]["bit_exact"]}


def model_table(results: list[dict], kinds: list[str]) -> str:
    head = (["model", "cpu", "MACs"] + [f"{LABELS[k]} instr" for k in kinds] +
            [f"{LABELS[k]} / CMSIS-NN" for k in kinds if k != "cmsis" and "cmsis" in kinds] +
            ["MAC/instr " + " / ".join(LABELS[k] for k in kinds), "code B " + " / ".join(LABELS[k] for k in kinds),
             "bit-exact"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        macs = sum(l["macs"] for l in r["layers"])
        for cpu, per in r["cpus"].items():
            t = {k: totals(r, cpu, k) for k in kinds if k in per}
            n = [t[k]["instructions"] if k in t else None for k in kinds]
            row = [r["model"], cpu, _n(macs)] + [_n(v) for v in n]
            if "cmsis" in kinds:
                base = n[kinds.index("cmsis")]
                row += [_ratio(v, base) for k, v in zip(kinds, n) if k != "cmsis"]
            row += [" / ".join(_mpi(macs, v) for v in n), " / ".join(_n(t[k]["code"]) if k in t else "-" for k in kinds),
                    "yes" if all(v["bit_exact"] for v in t.values()) else "NO"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def kind_table(results: list[dict], kinds: list[str]) -> str:
    """Instructions per op kind, summed over the models, per CPU."""
    agg: dict[tuple[str, str], dict[str, int]] = {}
    macs: dict[tuple[str, str], int] = {}
    for r in results:
        for cpu, per in r["cpus"].items():
            for lay in r["layers"]:
                key = (cpu, lay["kind"])
                macs[key] = macs.get(key, 0) + lay["macs"]
                d = agg.setdefault(key, {})
                for k in kinds:
                    v = per.get(k, {}).get("layers", {}).get(lay["index"], {}).get("instructions")
                    d[k] = None if v is None or d.get(k, 0) is None else d.get(k, 0) + v
    head = ["cpu", "op", "MACs"] + [f"{LABELS[k]} instr" for k in kinds] + \
        [f"{LABELS[k]} / CMSIS-NN" for k in kinds if k != "cmsis" and "cmsis" in kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (cpu, kind), d in sorted(agg.items()):
        n = [d.get(k) for k in kinds]
        row = [cpu, kind, _n(macs[(cpu, kind)])] + [_n(v) for v in n]
        if "cmsis" in kinds:
            row += [_ratio(v, d.get("cmsis")) for k, v in zip(kinds, n) if k != "cmsis"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def mix_table(results: list[dict], kinds: list[str]) -> str:
    from mcu_profile import CLASSES
    head = ["model", "cpu", "kernels"] + list(CLASSES)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        for cpu, per in r["cpus"].items():
            for k in kinds:
                if k in per:
                    m = totals(r, cpu, k)["mix"]
                    lines.append("| " + " | ".join([r["model"], cpu, LABELS[k]] + [_n(m.get(c, 0)) for c in CLASSES]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated (default: all six MLPerf Tiny and three Fashion-MNIST)")
    ap.add_argument("--cpus", default=",".join(CPUS))
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="edgeq (today's firmware), nhwc (the new kernels), spec (specialised), cmsis")
    ap.add_argument("--layers", action="store_true", help="print the per-layer tables too")
    ap.add_argument("--mix", action="store_true", help="print the instruction mix per model")
    ap.add_argument("--nhwc-isa", choices=("c", "dsp", "mve"), help="force this variant of the NHWC kernels "
                    "(default: the CPU's best, edgeq.runtime_c.packing.isa_for_cpu)")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--keep", type=Path, help="keep the builds in this folder")
    args = ap.parse_args(argv)
    import mcu_cmsis
    from edgeq.targets.mcu import cache_dir
    kinds = [k for k in BACKENDS if k in args.backends.split(",")]
    if "cmsis" in kinds and not mcu_cmsis.available():
        print(f"CMSIS-NN is absent ({mcu_cmsis.CMSIS}); leaving it out", file=sys.stderr)
        kinds.remove("cmsis")
    models = [m for m in (args.models.split(",") if args.models else MLPERF_MODELS + FMNIST_MODELS) if m]
    cpus = [c for c in args.cpus.split(",") if c]
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgeq-mcu-speed-"))
    cache = cache_dir()
    results = []
    for m in models:
        results.append(measure(m, cpus, kinds, work, cache, lambda s: print(s, file=sys.stderr, flush=True),
                               args.nhwc_isa))
    print(f"Instructions per inference counted by edgeq's QEMU TCG plugin (instructions, not cycles); "
          f"cortex-m7 on mps2-an500, cortex-m55 on mps3-an547. CMSIS-NN commit {mcu_cmsis.commit()[:12]}, -O2.\n")
    print(model_table(results, kinds))
    print()
    print(kind_table(results, kinds))
    if args.mix:
        print()
        print(mix_table(results, kinds))
    if args.layers:
        for r in results:
            for cpu in r["cpus"]:
                print(f"\n{r['model']} on {cpu}\n")
                print(layer_table(r, cpu, kinds))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    bad = [f"{r['model']} {cpu} {LABELS[k]}" for r in results for cpu, per in r["cpus"].items()
           for k, v in per.items() if not v["bit_exact"]]
    if bad:
        print("\nNOT BIT-EXACT: " + ", ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
