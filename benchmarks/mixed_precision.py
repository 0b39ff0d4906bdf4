"""Mixed-precision weights (HAWQ-V3 ILP, edgeq/mixed_precision) against uniform and greedy plans.

    python benchmarks/mixed_precision.py [--models dscnn,mobilenetv2,resnet8] [--imagenet]
                                         [--latency] [--n-imagenet 128] [--lock first|ends|none]
                                         [--sens hawq,measured] [--n-sens 32] [--probes 8]

Per model, rows (all with int8 activations, per-channel weights, the integer reference):
  all-int8, uniform int4,
  ILP (hawq)      : ILP at 60% of the all-int8 Conv/Gemm weight bytes, HAWQ sensitivity
  ILP (measured)  : same budget, measured sensitivity (output noise, one layer at int4)
  greedy (sens.)  : layers to int4 by smallest measured sensitivity until within budget
  greedy (largest): layers to int4 largest first until within budget
  greedy (smallest): layers to int4 smallest first until within budget (the literal reading
                     of "smallest layers first"; keeping the small layers int8 is `largest`)
After the table, each row is compared with ILP (measured) on the same samples
(benchmarks/paired.py): discordant top-1 samples with the exact McNemar p, and the SQNR gap
against float with a 95% bootstrap interval over samples.
Each plan is quantized as `edgeq compile --calib` does it (integer bias correction on the
calibration images; --no-bias-correction skips it).
The ILP and both greedy plans share the same locks (so the rows differ only in how they
choose): --lock ends (default for Fashion-MNIST) keeps the first and last Conv/Gemm int8,
--lock first (default for --imagenet) only the first, as HAWQ-V3 does. ImageNet MobileNetV2
needs `first`: its 1280x1000 classifier is 37% of the weight bytes, so with it int8 the
smallest plan is 2,375,312 B > 60% of all-int8 (2,081,856 B).
--sens picks the ILP sensitivity rows (the greedy-by-sensitivity row uses measured if
computed, else hawq); --n-sens / --probes: images and Hutchinson probes for the sensitivities.

Fashion-MNIST: accuracy on the 10k test set, calibration on 512 training images.
MobileNetV2 (ImageNet weights, --imagenet): top-1 agreement with float and SQNR on
natural images (models/natural_images.py, seed 0; calibration seed 1), as in dfq_mobilenetv2.
--latency: dscnn on cortex-m7, a flash budget plus a latency budget in QEMU instructions,
checked on the emulated board, a whole-firmware flash budget checked on the linked ELF, and
the firmware flash of all-int8 vs the plans.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/paired.py, peers.py
from peers import run_onnx, sqnr_db  # noqa: E402

BUDGET = 0.6
BIAS_CORR = True  # integer bias correction, on in `edgeq compile` with --calib
ROUNDING = "gptq"  # int4 layers' rounding, as `edgeq compile --calib` does it (--weight-rounding)
BATCH = 16
ROWS: set[str] = set()  # --rows: evaluate only these plans (--imagenet; to split a run over processes)


def prepare(onnx_path, calib: np.ndarray):
    from edgeq.calibration.calibrate import calibrate
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from edgeq.driver.pipeline import CompileOptions, float_passes, run_float_passes
    graph = import_onnx(onnx_path)
    ctx = PassContext(calib=None, options={"weight_granularity": "per-channel", "weight_bits": 8})
    # per-channel weights: the compile default adds no DFQ pass, so no guard is needed here
    graph = run_float_passes(graph, ctx, float_passes(CompileOptions(dfq_guard=False)))
    return graph, calibrate(graph, {graph.inputs[0]: calib}, progress=False)


def quantize_plan(graph, ranges, plan, calib: np.ndarray | None = None):
    """As `edgeq compile --calib` does it: GPTQ rounding of the int4 layers
    (edgeq/quantization/gptq.py), quantization, integer bias correction (passes/correct_bias_integer.py)."""
    from edgeq.quantization.quantize import quantize
    rounded = graph
    if calib is not None and ROUNDING == "gptq":
        from edgeq.passes.round_weights_gptq import gptq_rounded
        rounded = gptq_rounded(graph, {graph.inputs[0]: calib}, plan)
    q = quantize(rounded, ranges, weight_granularity="per-channel", weight_bits=plan)
    if calib is not None and BIAS_CORR:
        from edgeq.passes.correct_bias_integer import correct_bias_quantized
        q = correct_bias_quantized(q, graph, {graph.inputs[0]: calib})
    return q


def run_int(graph, ranges, plan, x: np.ndarray, calib: np.ndarray | None = None) -> np.ndarray:
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    q = quantize_plan(graph, ranges, plan, calib)
    name, out = q.inputs[0], q.outputs[0]
    return np.concatenate([dequantize_outputs(q, run_reference(q, quantize_inputs(q, {name: x[i:i + 256]})))[out]
                           for i in range(0, len(x), 256 if len(x[0].ravel()) < 10000 else BATCH)])


def run_host(q, x: np.ndarray, n_check: int = 1) -> np.ndarray:
    """The quantized graph's outputs from its generated C built for this machine (target
    `host`): bit-exact with the integer reference (tests/test_codegen_host.py and the build's own
    self-check), ~100x quicker on 224x224. The first `n_check` images are also run through
    the reference and must match exactly, so a wrong build cannot slip into the table."""
    import tempfile
    from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
    from edgeq.targets.host import HostTarget
    name, out = q.inputs[0], q.outputs[0]
    xq = quantize_inputs(q, {name: x})[name]
    with tempfile.TemporaryDirectory() as tmp:
        target = HostTarget()
        target.build(q, Path(tmp), {}, test_vectors=None)
        yq = np.concatenate([target.run(Path(tmp), {name: xq[i:i + 16]})[out] for i in range(0, len(xq), 16)])
    ref = run_reference(q, {name: xq[:n_check]})[out]
    if not np.array_equal(ref, yq[:n_check]):
        raise SystemExit("host C build differs from the integer reference: this is an edgeq bug")
    return dequantize_outputs(q, {out: yq})[out]


def greedy(layers, order, limit, locks) -> dict[str, int]:
    """int4 for layers in `order` (skipping locked ones) until the weight bytes fit."""
    from edgeq.mixed_precision.layers import total_weight_bytes
    plan = {l.name: 8 for l in layers}
    for l in order:
        if total_weight_bytes(layers, plan) <= limit:
            break
        if l.name not in locks:
            plan[l.name] = 4
    return plan


def lock_set(layers, lock: str) -> dict[str, int]:
    from edgeq.mixed_precision.plan import _first_last
    if lock == "ends":
        return _first_last(layers)
    return {layers[0].name: 8} if lock == "first" and layers else {}


def plans(graph, feeds_sens, layers, lock="ends", sens=("hawq", "measured"), probes=8):
    from edgeq.mixed_precision.ilp import assign_bitwidth_ilp, size_budget
    from edgeq.mixed_precision.layers import total_weight_bytes
    from edgeq.mixed_precision.sensitivity import hawq_sensitivity, measured_sensitivity
    t = time.perf_counter()
    big = graph_is_big(layers)  # 224x224 MobileNetV2: Hessian-vector products cost ~100x dscnn's
    hawq = meas = None
    if "hawq" in sens:
        hawq, _ = hawq_sensitivity(graph, {k: v[:16 if big else 64] for k, v in feeds_sens.items()}, layers,
                                   iters=probes, batch=8 if big else 64, progress=True, rounding=ROUNDING)
    t_h = time.perf_counter() - t
    t = time.perf_counter()
    if "measured" in sens:
        meas, _ = measured_sensitivity(graph, feeds_sens, layers, progress=True, rounding=ROUNDING)
    t_m = time.perf_counter() - t
    print(f"sensitivities: hawq {t_h:.0f} s, measured {t_m:.0f} s", flush=True)
    limit = BUDGET * total_weight_bytes(layers, 8)
    locks = lock_set(layers, lock)
    out = {"all-int8": {l.name: 8 for l in layers}, "uniform int4": {l.name: 4 for l in layers}}
    if hawq is not None:
        out["ILP (hawq)"] = assign_bitwidth_ilp(layers, hawq, [size_budget(layers, limit)], locks=locks)
    if meas is not None:
        out["ILP (measured)"] = assign_bitwidth_ilp(layers, meas, [size_budget(layers, limit)], locks=locks)
    # smallest sensitivity first (per byte saved would be the knapsack heuristic; the brief's
    # baseline is plain sensitivity order)
    gs = meas if meas is not None else hawq
    if gs is not None:
        out["greedy (sens.)"] = greedy(layers, sorted(layers, key=lambda l: gs[l.name][4]), limit, locks)
    out["greedy (largest)"] = greedy(layers, sorted(layers, key=lambda l: -l.params), limit, locks)
    out["greedy (smallest)"] = greedy(layers, sorted(layers, key=lambda l: l.params), limit, locks)
    return out, {"hawq_s": t_h, "measured_s": t_m}


def graph_is_big(layers) -> bool:
    return sum(l.macs for l in layers) > 50e6


def table(title, rows, metric_names):
    from rich.console import Console
    from rich.table import Table
    t = Table(title=title)
    for c in ["plan", *metric_names, "weight bytes", "% of int8", "int4 layers"]:
        t.add_column(c, justify="left" if c == "plan" else "right")
    for r in rows:
        t.add_row(r["plan"], *[f"{r[m]:.2f}" for m in metric_names], f"{r['bytes']:,}",
                  f"{r['pct']:.0f}%", r["n4"])
    Console(width=200).print(t)


def paired_table(title, ref: np.ndarray, outputs: dict, right: dict, base: str = "ILP (measured)"):
    """Every plan against `base` on the same samples: who is right where the other is not,
    and the SQNR gap with its bootstrap interval (benchmarks/paired.py)."""
    from rich.console import Console
    from rich.table import Table
    from paired import mcnemar, sqnr_gap
    if base not in outputs:
        return
    t = Table(title=title)
    for c in ("plan", f"right only for {base}", "right only for plan", "McNemar p",
              f"SQNR gap dB ({base} - plan)", "95% interval"):
        t.add_column(c, justify="left" if c == "plan" else "right")
    for label in outputs:
        if label == base:
            continue
        a_only, b_only, p = mcnemar(right[base], right[label])
        gap, lo, hi = sqnr_gap(ref, outputs[base], outputs[label])
        t.add_row(label, str(a_only), str(b_only), f"{p:.3g}", f"{gap:+.2f}", f"[{lo:+.2f}, {hi:+.2f}]")
    Console(width=200).print(t)


def fmnist_model(name: str, n_test: int, lock: str = "ends"):
    from edgeq.mixed_precision.layers import total_weight_bytes, weighted_layers
    from edgeq.models.fmnist import load_fmnist, preprocess
    from edgeq.models.registry import model_path
    xtr, _ = load_fmnist("train")
    xte, yte = load_fmnist("test")
    calib = preprocess(xtr[:512])
    xte, yte = preprocess(xte[:n_test]), yte[:n_test]
    graph, ranges = prepare(model_path(name), calib)
    ref = run_onnx(model_path(name), xte)  # float logits, onnxruntime
    layers = weighted_layers(graph)
    ps, times = plans(graph, {graph.inputs[0]: calib[:256]}, layers, lock)
    rows, a8, outputs, right = [], total_weight_bytes(layers, 8), {}, {}
    for label, plan in ps.items():
        y = outputs[label] = run_int(graph, ranges, plan, xte, calib)
        right[label] = y.argmax(1) == yte
        b = total_weight_bytes(layers, plan)
        rows.append({"plan": label, "top-1 %": 100 * float(right[label].mean()), "SQNR dB": sqnr_db(ref, y),
                     "bytes": b, "pct": 100 * b / a8, "n4": f"{sum(v == 4 for v in plan.values())}/{len(plan)}"})
    table(f"fmnist {name}: accuracy on {len(yte):,} test images, SQNR of the logits against float "
          f"(sensitivity: hawq {times['hawq_s']:.0f} s, measured {times['measured_s']:.0f} s)",
          rows, ["top-1 %", "SQNR dB"])
    paired_table(f"fmnist {name}: paired against ILP (measured), top-1 against the labels", ref, outputs, right)
    return rows


def mobilenetv2(n: int, n_calib: int = 256, lock: str = "first", sens=("hawq", "measured"), n_sens=32,
                probes=8):
    import torch
    from edgeq.mixed_precision.layers import total_weight_bytes, weighted_layers
    from edgeq.models.mobilenetv2_imagenet import export_onnx, load_pretrained
    from edgeq.models.natural_images import natural_images
    torch.set_num_threads(2)
    x, calib = natural_images(n, seed=0), natural_images(n_calib, seed=1)
    model = load_pretrained()
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(x[i:i + BATCH])).numpy() for i in range(0, n, BATCH)])
    graph, ranges = prepare(export_onnx(), calib)
    layers = weighted_layers(graph)
    if ROWS:  # sensitivities only for the rows asked for (they take minutes at 224x224)
        sens = tuple(s for s in sens if f"ILP ({s})" in ROWS or "greedy (sens.)" in ROWS)
    ps, times = plans(graph, {graph.inputs[0]: calib[:n_sens]}, layers, lock, sens, probes)
    rows, a8, outputs, right = [], total_weight_bytes(layers, 8), {}, {}
    for label, plan in ps.items():
        if ROWS and label not in ROWS:
            continue
        t = time.perf_counter()
        y = outputs[label] = run_host(quantize_plan(graph, ranges, plan, calib), x).astype(np.float64)
        right[label] = y.argmax(1) == ref.argmax(1)
        b = total_weight_bytes(layers, plan)
        rows.append({"plan": label, "top-1 agree %": 100 * float(right[label].mean()),
                     "SQNR dB": sqnr_db(ref, y), "bytes": b, "pct": 100 * b / a8,
                     "n4": f"{sum(v == 4 for v in plan.values())}/{len(plan)}"})
        print(f"{label}: {rows[-1]} ({time.perf_counter() - t:.0f} s)", flush=True)
    table(f"MobileNetV2 ImageNet weights, {n} natural images (sensitivity: hawq {times['hawq_s']:.0f} s, "
          f"measured {times['measured_s']:.0f} s)", rows, ["top-1 agree %", "SQNR dB"])
    paired_table("MobileNetV2: paired against ILP (measured), top-1 agreement with float", ref, outputs, right)


def ilp_speed(n_layers: int = 100):
    from edgeq.mixed_precision.ilp import Budget, assign_bitwidth_ilp
    rng = np.random.default_rng(0)
    names = [f"l{i}" for i in range(n_layers)]
    size = {n: {8: float(s), 4: float(s) / 2} for n, s in zip(names, rng.integers(100, 100000, n_layers))}
    sens = {n: {8: float(a), 4: float(a * 300)} for n, a in zip(names, rng.random(n_layers))}
    lat = {n: {8: float(c), 4: float(c * rng.uniform(0.8, 1.3))} for n, c in zip(names, rng.integers(1e4, 1e6, n_layers))}
    total8 = sum(s[8] for s in size.values())
    t = time.perf_counter()
    assign_bitwidth_ilp(names, sens, [Budget("weight bytes", size, 0.6 * total8),
                                      Budget("instructions", lat, 1.02 * sum(c[8] for c in lat.values()))],
                        ties=[names[i:i + 2] for i in range(0, 20, 2)])
    print(f"ILP, {n_layers} layers, size + latency budgets, 10 ties: {time.perf_counter() - t:.3f} s")


def latency_section():
    """dscnn on cortex-m7: the 70% flash plan, then the same flash budget plus a latency budget
    of all-int8 + 1.4% QEMU instructions, checked on the board. Every int4 kernel is slower
    than its int8 one on Cortex-M7, so the budget must lie between the fastest plan within
    70% (+1.3%) and the flash-only plan (+1.7%) to bind; at 60% that gap is ~0.01%."""
    import tempfile
    from edgeq.errors import EdgeqError
    from edgeq.models.fmnist import load_fmnist, preprocess
    from edgeq.models.registry import model_path
    from edgeq.targets import get_target
    from edgeq.driver.pipeline import CompileOptions, compile_model
    xtr, _ = load_fmnist("train")
    calib = preprocess(xtr[:256])
    target = get_target("cortex-m7")
    rows, counts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("all-int8", {"weight_bits": 8}), ("uniform int4", {"weight_bits": 4}),
                ("ILP flash 70%", {"weight_bits": "auto", "flash_budget": "70%"}),
                ("ILP firmware 85%", {"weight_bits": "auto", "firmware_budget": "85%"}),
                ("ILP flash 70% + latency", None)]
        for label, kw in runs:
            if kw is None:  # a budget that binds: between the two measured counts
                lat = int(counts["all-int8"] * 1.014)
                kw = {"weight_bits": "auto", "flash_budget": "70%", "latency_budget": str(lat)}
                label = "ILP flash 70% + latency 101.4%"
            out = Path(tmp) / f"b{len(rows)}"
            try:
                res = compile_model(model_path("dscnn"), CompileOptions(target="cortex-m7", progress=False, **kw),
                                    out, calib, log=lambda m: None)
            except EdgeqError as e:
                print(f"{label}: {e}")
                continue
            prof = target.profile(out, "qemu")
            counts[label] = prof["instructions"]
            mp = res.report.get("mixed_precision", {})
            bits = res.report["options"]["weight_bits_per_layer"]
            rows.append((label, prof["instructions"], mp.get("latency_budget_instructions"),
                         mp.get("instructions_predicted"), res.report["flash_bytes"],
                         mp.get("firmware_budget_bytes"), mp.get("firmware_bytes_predicted"),
                         mp.get("weight_bytes"), sum(v == 4 for v in bits.values())))
    from rich.console import Console
    from rich.table import Table
    t = Table(title="dscnn on cortex-m7 (QEMU mps2-an500): instructions per inference (not cycles), firmware "
                    "flash (ELF, without edgeq's embedded test vectors)")
    for c in ("plan", "instructions (QEMU)", "latency budget", "ILP predicted", "firmware flash B (ELF)",
              "firmware budget", "ILP predicted", "Conv/Gemm weight B", "int4 layers"):
        t.add_column(c, justify="right")
    fmt = lambda v: "" if v is None else f"{v:,}"
    for r in rows:
        t.add_row(r[0], *[fmt(v) for v in r[1:8]], str(r[8]))
    Console(width=200).print(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="dscnn,mobilenetv2,resnet8")
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--imagenet", action="store_true")
    ap.add_argument("--n-imagenet", type=int, default=128)
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--lock", choices=("first", "ends", "none"), default=None,
                    help="layers kept int8: first, first+last (ends); default ends for Fashion-MNIST, "
                         "first for --imagenet")
    ap.add_argument("--sens", default="hawq,measured", help="ILP sensitivity rows: hawq, measured")
    ap.add_argument("--n-sens", type=int, default=32, help="--imagenet: images for the sensitivities")
    ap.add_argument("--probes", type=int, default=8, help="Hutchinson probes for hawq")
    ap.add_argument("--no-ilp-speed", action="store_true")
    ap.add_argument("--rows", default="", help="--imagenet: only these plans, comma-separated labels")
    ap.add_argument("--no-bias-correction", action="store_true", help="skip the integer bias correction")
    ap.add_argument("--weight-rounding", choices=("gptq", "nearest"), default="gptq",
                    help="rounding of the int4 layers (default gptq, as edgeq compile --calib)")
    a = ap.parse_args()
    global BIAS_CORR, ROUNDING
    BIAS_CORR = not a.no_bias_correction
    ROUNDING = a.weight_rounding
    ROWS.update(filter(None, a.rows.split(",")))
    if not a.no_ilp_speed:
        ilp_speed()
    for name in filter(None, a.models.split(",")):
        fmnist_model(name, a.n_test, a.lock or "ends")
    if a.latency:
        latency_section()
    if a.imagenet:
        mobilenetv2(a.n_imagenet, lock=a.lock or "first", sens=tuple(filter(None, a.sens.split(","))),
                    n_sens=a.n_sens, probes=a.probes)


if __name__ == "__main__":
    main()
