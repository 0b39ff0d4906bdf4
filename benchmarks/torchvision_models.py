"""Which torchvision classifiers edgeq compiles as users export them, and what blocks the rest.

    python benchmarks/torchvision_models.py [--models mobilenet_v2,resnet18] [--exporters legacy,dynamo]
                                            [--inputs 2] [--size 224] [--json out.json]

For each architecture (edgeq.models.torchvision_zoo: random init, mobilenet_v2 with its
local ImageNet weights when installed) and each torch exporter (legacy opset 13 with
dynamic_axes, dynamo with a symbolic batch Dim), the ONNX file with its dynamic batch axis
is compiled for `reference` and for `host` with no extra flag (data-free ranges), then
both builds run the same natural-photo crops and the outputs must be equal
(np.array_equal). When the plain compile is refused, it is tried again with
`--input-shape x=1x3xSxS`, so the table also shows what blocks a model after the
dynamic batch. Each blocker is named with the part of issue 20 that removes it:
s20a (dynamic batch, per-channel overflow / left shift, streaming reference) or s20b
(new ops).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

# (pattern in edgeq's one-line error, what it is, whose work removes it)
BLOCKERS = [
    (r"dynamic or unknown shape", "dynamic batch axis", "s20a"),
    (r"no (?:ONNX )?(?:converter|importer|quantization rule|integer reference kernel|C kernel)[^:]* for op (\w+)",
     "op {0}", "s20b"),
    (r"unsupported (?:ONNX )?op(?:erator)?s? '?(\w+)", "op {0}", "s20b"),
    (r"overflow|multiplier .* > 1", "per-channel overflow / left shift", "s20a"),
    (r"MemoryError|Killed|Cannot allocate", "reference memory (streaming)", "s20a"),
]


def blocker(message: str) -> str:
    for pattern, what, owner in BLOCKERS:
        m = re.search(pattern, message)
        if m:
            return f"{what.format(*m.groups())} ({owner})"
    return f"other: {message[:120]}"


def compile_for(path: Path, target: str, out: Path, input_shapes=None):
    from edgeq.options import CompileOptions
    from edgeq.driver.pipeline import compile_model
    return compile_model(path, CompileOptions(target=target, input_shapes=input_shapes, progress=False), out,
                         log=lambda m: print(f"note: {m}", file=sys.stderr))


def check(name: str, exporter: str, work: Path, n_inputs: int, size: int) -> dict:
    """One row: export, compile (plain, then with --input-shape), reference vs host."""
    from edgeq.errors import EdgeqError
    from edgeq.reference.interpreter import quantize_inputs
    from edgeq.models import torchvision_zoo as zoo
    from edgeq.targets import get_target

    row = {"model": name, "exporter": exporter}
    t0 = time.perf_counter()
    try:
        onnx_path = zoo.export(zoo.build(name), work / f"{name}_{exporter}.onnx", exporter, (1, 3, size, size))
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
        shapes = {"x": (1, 3, size, size)}
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
    feeds = quantize_inputs(qgraph, {qgraph.inputs[0]: zoo.sample_inputs(n_inputs, size)})
    t0 = time.perf_counter()
    ref = get_target("reference").run(ref_dir, feeds)
    row["reference_run_s"] = round(time.perf_counter() - t0, 1)
    host = get_target("host").run(host_dir, feeds)
    row["host"] = "ok"
    row["bit_exact"] = all(np.array_equal(ref[k], host[k]) for k in qgraph.outputs)
    row["inputs"] = n_inputs
    return row


def table(rows: list[dict]) -> str:
    head = ["model", "exporter", "no flags", "with --input-shape", "host = reference", "blocked by (owner)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        exact = {True: f"yes ({r.get('inputs')} inputs)", False: "NO"}.get(r.get("bit_exact"), "-")
        named = [b for b in (r.get("blocked_by"), r.get("then_blocked_by"), r.get("host_blocked_by")) if b]
        blocks = "; then ".join(dict.fromkeys(named)) or "-"  # a blocker seen twice is named once
        lines.append(f"| {r['model']} | {r['exporter']} | {r.get('plain', '-')} | "
                     f"{r.get('with_input_shape', '-')} | {exact} | {blocks} |")
    return "\n".join(lines)


def main() -> int:
    from edgeq.models import torchvision_zoo as zoo
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.ARCHITECTURES))
    ap.add_argument("--exporters", default=",".join(zoo.EXPORTERS))
    ap.add_argument("--inputs", type=int, default=2, help="natural-photo crops run on reference and host")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    zoo.load_torchvision()  # fail now, with the install hint, if torchvision is absent
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
    print(f"torchvision {zoo.load_torchvision().__version__}, inputs 1x3x{args.size}x{args.size}, "
          f"weights: random init (seed 0){', mobilenet_v2 ImageNet' if zoo.pretrained_available() else ''}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
