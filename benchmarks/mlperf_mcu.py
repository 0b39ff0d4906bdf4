"""Every MLPerf Tiny model on the emulated Cortex-M7 board, beside TFLite Micro's arena.

For each model in ../shared/models/mlperf-tiny (skipped when absent):

1. `compile_model(..., target="cortex-m7")`, calibrated on 32 samples of
   edgeq.models.mlperf_inputs(name, "calib"): the firmware for the STM32F746 budget (1 MB
   flash, 320 KB SRAM), whose build already runs its embedded test vectors on QEMU
   mps2-an500 and fails unless they equal the integer reference;
2. bit-exactness on held-out inputs: --inputs samples of mlperf_inputs(name, "eval") run on
   the board (`MCUTarget.run`) and by the Python integer reference, compared with
   np.array_equal on every raw int8 output;
3. `MCUTarget.profile(dir, "qemu")`: instructions per inference, counted exactly by the
   QEMU TCG plugin (instructions, not cycles);
4. flash (model code + constants, test vectors excluded), arena, SRAM (static data with the
   arena + the painted stack peak) and stack from report.json; the arena of the plan the
   build used (default: the fastest that fits the part, every layer its kernel's scratch)
   and of the smallest plan (`--scratch fit`: scratch only under the activations' own peak,
   other layers on the scratch-free kernel variants), both from report.json;
5. TFLite Micro's arena (tflite-micro's Python interpreter, print_allocations(), reference
   kernels, host build) for the official int8 model (reference_int8.tflite) and for
   edgeq's own export of the same quantized graph (edgeq.export.tflite). "head" is the
   planned activations + scratch, the part comparable with edgeq's arena; "total" adds
   TFLM's persistent structs (64-bit host pointers: smaller on a 32-bit MCU).

    python benchmarks/mlperf_mcu.py [--models kws01,ic01] [--inputs 4] [--keep DIR]
                                    [--scratch fast|fit|always]

--scratch is `edgeq compile`'s (default fast). The last column says whether edgeq's
smallest arena is at most TFLM's head for both .tflite files (TFLM's reference kernels
take no scratch; CMSIS-NN's would add theirs). Exit status 1 if any model is not
bit-exact or its smallest arena is larger than TFLM's head.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]
TARGET = "cortex-m7"


def measure(name: str, folder: Path, n_inputs: int, work: Path, scratch: str = "fast") -> dict:
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    from edgeq.models.mlperf_inputs import mlperf_inputs
    from edgeq.targets import get_target
    from edgeq.driver.pipeline import CompileOptions, compile_model
    from edgeq.export.tflite import export_tflite
    from edgeq.export.tflite_run import tflm_allocations

    t0 = time.perf_counter()
    out = work / name
    res = compile_model(str(folder / "model.onnx"), CompileOptions(target=TARGET, progress=False, calib_limit=32,
                                                                          scratch=scratch),
                        out, calib=mlperf_inputs(name, "calib", n=32), log=lambda s: None)
    rep, q = res.report, res.qgraph
    target = get_target(TARGET)

    x = mlperf_inputs(name, "eval", n=n_inputs)
    feeds = quantize_inputs(q, {q.inputs[0]: x})
    got = target.run(out, feeds)
    want = run_reference(q, feeds)
    exact = all(np.array_equal(got[k], want[k]) for k in q.outputs)

    prof = target.profile(out, "qemu")
    official = folder / "reference_int8.tflite"
    tflm_official = tflm_allocations(official) if official.is_file() else None
    tflm_export = tflm_allocations(export_tflite(q))
    return {
        "model": name, "flash_bytes": rep["flash_bytes"], "arena_bytes": rep["arena_bytes"],
        "arena_smallest_bytes": rep["memory_plan"]["arena_bytes_smallest"],
        "sram_bytes": rep["sram_bytes"], "stack_bytes": rep["stack_bytes"],
        "instructions": prof["instructions"], "layers": len(prof["layers"]),
        "layer_instructions": {l["name"]: l["instructions"] for l in prof["layers"]},
        "self_check": rep["self_check"], "bit_exact": exact, "eval_inputs": len(x),
        "direct_layers": rep["memory_plan"].get("direct", []),
        "tflm_official": tflm_official, "tflm_export": tflm_export,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _k(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def arena_ok(r: dict) -> bool:
    heads = [t["head"] for t in (r["tflm_official"], r["tflm_export"]) if t]
    return all(r["arena_smallest_bytes"] <= h for h in heads)


def table(rows: list[dict]) -> str:
    head = ("| model | flash | arena | arena, --scratch fit | SRAM | stack | instructions / inference | "
            "bit-exact on QEMU | TFLM arena, official .tflite (head / total) | "
            "TFLM arena, edgeq's .tflite (head / total) | fit arena ≤ TFLM |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        off, exp = r["tflm_official"], r["tflm_export"]
        checked = r["eval_inputs"] + r["self_check"]["vectors"]
        lines.append(
            f"| {r['model']} | {_k(r['flash_bytes'])} | {_k(r['arena_bytes'])} | {_k(r['arena_smallest_bytes'])} | "
            f"{_k(r['sram_bytes'])} | "
            f"{_k(r['stack_bytes'])} | {_k(r['instructions'])} | "
            f"{'yes' if r['bit_exact'] and r['self_check']['passed'] else 'NO'} ({checked} inputs) | "
            f"{_k(off['head']) if off else '-'} / {_k(off['total']) if off else '-'} | "
            f"{_k(exp['head'])} / {_k(exp['total'])} | {'yes' if arena_ok(r) else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated subset (default: all present)")
    ap.add_argument("--inputs", type=int, default=4, help="held-out inputs run on the board (default 4)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the build folders here")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--scratch", choices=("fast", "fit", "always"), default="fast",
                    help="edgeq compile's --scratch (default fast: the fastest plan that fits the part)")
    args = ap.parse_args(argv)
    from tests.conftest import MLPERF
    wanted = [m for m in (args.models.split(",") if args.models else MODELS) if m]
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgeq-mlperf-mcu-"))
    rows = []
    for name in wanted:
        folder = MLPERF / name
        if not (folder / "model.onnx").is_file():
            print(f"{name}: absent ({folder})", flush=True)
            continue
        r = measure(name, folder, args.inputs, work, args.scratch)
        rows.append(r)
        print(f"{name}: flash {r['flash_bytes']:,} B, arena {r['arena_bytes']:,} B, SRAM {r['sram_bytes']:,} B, "
              f"{r['instructions']:,} instructions/inference, bit-exact {r['bit_exact']}, "
              f"TFLM head official {_k((r['tflm_official'] or {}).get('head'))} / edgeq export "
              f"{_k(r['tflm_export']['head'])} ({r['seconds']} s)", flush=True)
    print()
    print(f"{TARGET} (STM32F746 budget) on QEMU mps2-an500; instructions counted by the TCG plugin, not cycles;"
          f" scratch policy {args.scratch}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    bad = [r["model"] for r in rows if not (r["bit_exact"] and r["self_check"]["passed"] and arena_ok(r))]
    if bad:
        print(f"FAILED: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
