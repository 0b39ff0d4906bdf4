"""Human-readable tables: the compile summary and `edgeq inspect`."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape as rich_escape
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgeq.errors import EdgeqError
from edgeq.importer.load import import_onnx
from edgeq.report.report import layer_rows, read_report


def _kb(n) -> str:
    # KiB: budgets read "KB" as 1000 bytes (parse_budget), so the summary must not print KB for 1024
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def print_compile_summary(report: dict, out_dir: Path, console: Console) -> None:
    console.print(f"[bold]edgeq[/] compiled for [bold]{report['target']}[/] -> {rich_escape(str(out_dir))}")
    rows = [("layers", str(len(report["layers"]))), ("MACs / inference", f"{report['macs']:,}"),
            ("weights + params", _kb(report.get("weights_bytes")))]
    cal = report.get("options", {}).get("calibration")
    if cal:
        rows.append(("calibration", _calibration(cal)))
    for key, label in (("flash_bytes", "flash"), ("arena_bytes", "arena (activations)"),
                       ("stack_bytes", "peak stack"), ("sram_bytes", "SRAM total")):
        if key in report:
            rows.append((label, _kb(report[key]) + (_plans(report["memory_plan"]) if key == "arena_bytes"
                                                    and "arena_bytes_fastest" in report.get("memory_plan", {}) else "")))
    if "instructions" in report:
        rows.append(("instructions / inference", f"{report['instructions']:,} (exact, QEMU; not cycles)"))
    if "arm64" in report:
        rows.append(("kernels", _arm64_kernels(report["arm64"], len(report["layers"]))))
        if "cpu_detected" in report["arm64"]:
            rows.append(("cpu", f"detected on {report['arm64']['cpu_detected']}"))
    if "binary_bytes" in report:
        rows.append(("static binary", _kb(report["binary_bytes"])))
    if "self_check" in report:
        rows.append(("self-check on board", _self_check(report["self_check"])))
    if "mixed_precision" in report:
        rows.append(("weight bits (auto)", _bits_plan(report["mixed_precision"])))
    if report.get("gptq_rounding"):
        rows.append(("int4 rounding", _gptq(report["gptq_rounding"])))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        console.print(f"  {label:<{width}}  {value}")
    if "training" in report:
        print_training(report["training"], console)


def _update_text(u: dict) -> str:
    what = []
    if u["weights"]:
        what.append("weights" + (f" of {len(u['channels'])} input channels" if u["channels"] else ""))
    if u["bias"]:
        what.append("bias")
    return f"{u['layer']} ({' + '.join(what)})"


def print_training(t: dict, console: Console) -> None:
    """The training build: what moves, its memory, its cost per step, its check."""
    mem = t["memory"]
    moved = [_update_text(u) for u in t["updates"]]
    rows = [("training", f"--train {t['spec']}, lr {t['options']['lr']:g}: {len(t['updates'])} layer(s) move"),
            ("  updated", rich_escape(", ".join(moved[:4]) + (f" and {len(moved) - 4} more" if len(moved) > 4 else ""))),
            ("  training arena", f"{_kb(mem['arena_bytes'])} (inference {_kb(mem['inference_arena_bytes'])}; "
                                 f"gradients at most {_kb(mem['gradient_bytes'])} of it)"),
            ("  trained params", f"{_kb(t.get('state_sram_bytes'))} in SRAM (weights {_kb(mem['trained_weight_bytes'])}, "
                                 f"residuals {_kb(mem['residual_bytes'])}, biases {_kb(mem['trained_bias_bytes'])}"
                                 + (f", momentum {_kb(mem['momentum_bytes'])}" if mem.get("momentum_bytes") else "")
                                 + ")")]
    if t.get("stack_bytes") is not None:
        rows.append(("  peak stack", _kb(t["stack_bytes"])))
    rows.append(("  SRAM total", f"{_kb(t.get('sram_bytes'))} of a {_kb(t['budget_bytes'])} budget"))
    rows.append(("  flash", _kb(t.get("flash_bytes"))))
    if t.get("instructions_per_step"):
        rows.append(("  instructions/step", f"{t['instructions_per_step']:,} (exact, QEMU; not cycles)"))
    if "self_check" in t:
        c = t["self_check"]
        rows.append(("  training check", f"{'bit-exact' if c['passed'] else 'FAILED'} vs the reference over {c['steps']} steps"))
    if "trained" in t:
        d = t["trained"]
        rows.append(("  trained", f"{d['steps']:,} steps so far (last run: {d['samples']:,} samples x {d['epochs']} epochs, "
                                  f"lr {d['lr']:g}, {rich_escape(str(d['data']))})"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        console.print(f"  {label:<{width}}  {value}", highlight=False)


def _plans(plan: dict) -> str:
    """Which memory plan the build used, beside the other: the fastest (every layer its
    kernel's scratch) and the smallest (--scratch fit: scratch-free kernels where needed; the
    default runs those layers in row ranges instead)."""
    other = ("smallest", "--scratch fit") if plan["plan"] == "fastest" else ("fastest", "--scratch always")
    text = f" ({plan['plan']} plan; {other[0]}: {_kb(plan[f'arena_bytes_{other[0]}'])} with {other[1]})"
    if plan.get("row_chunks"):
        text += f", {len(plan['row_chunks'])} layer(s) in row ranges (scratch in dead rows)"
    if plan.get("direct"):
        text += f", {len(plan['direct'])} layer(s) on scratch-free kernels"
    return text


def _calibration(cal: dict) -> str:
    """One line: how the activation ranges were found."""
    if cal["method"] == "data-free":
        return "data-free (BatchNorm statistics; no --calib)"
    how = f"percentile {cal['percentile']:g}" if "percentile" in cal else cal["method"]
    return f"{how} on {cal['samples']:,} samples"


def _bits_plan(mp: dict) -> str:
    """One line: how many layers went int4, the weight bytes against the budget, the plot."""
    n4 = sum(v["bits"] == 4 for v in mp["layers"].values())
    line = f"{n4}/{len(mp['layers'])} Conv/Gemm layers int4, weights {_kb(mp['weight_bytes'])}"
    if "flash_budget_weight_bytes" in mp:
        line += f" (budget {_kb(mp['flash_budget_weight_bytes'])}, all-int8 {_kb(mp['all_int8_weight_bytes'])})"
    if "firmware_budget_bytes" in mp:
        line += (f", firmware {_kb(mp['firmware_bytes_predicted'])} predicted (budget "
                 f"{_kb(mp['firmware_budget_bytes'])}, all-int8 {_kb(mp['all_int8_firmware_bytes'])})")
    if "latency_budget_instructions" in mp:
        line += f", {mp['instructions_predicted']:,} instructions predicted (budget {mp['latency_budget_instructions']:,})"
    if mp.get("pareto_plot"):
        line += f"; Pareto plot {mp['pareto_plot']}"
    return line


def _gptq(layers: dict) -> str:
    """One line: GPTQ's effect on the int4 layers' output error (calibration data)."""
    near = [v["output_error_nearest"] for v in layers.values()]
    gptq = [v["output_error_gptq"] for v in layers.values()]
    return (f"GPTQ on {len(layers)} layer(s): mean relative output error {100 * sum(near) / len(near):.2f}% "
            f"(round to nearest) -> {100 * sum(gptq) / len(gptq):.2f}% on the calibration data")


def _arm64_kernels(a: dict, layers: int) -> str:
    """One line: which layers run TVM kernels and which fall back to edgeq's C kernels."""
    c = ", ".join(f"{op} x{n}" for op, n in sorted(a["c_layers"].items()))
    if a["lowering"] == "c":
        return f"edgeq C runtime for all {layers} layers (--lowering c), {a['cpu']}"
    line = f"TVM for {a['tvm_layers']} of {layers} layers ({a['cpu']}, {a['inner_product']}; {a['kernels']} objects)"
    if a.get("free_layers"):
        line += f", {a['free_layers']} moving no data"
    return line + (f"; C kernels (no TVM kernel) for {c}" if c else "")


def _self_check(sc: dict) -> str:
    """One line a person reads: how many embedded test vectors matched the reference."""
    n, bad = sc.get("vectors", 0), sc.get("mismatches", 0) + sc.get("errors", 0)
    if sc.get("passed"):
        return f"{n}/{n} test vectors bit-exact (integer reference)"
    return f"FAILED: {bad} of {n} test vectors differ (exit status {sc.get('exit_status')})"


def _plain(text: str) -> Text:
    """A string from the model file as plain text: no rich markup (`[/]`), no terminal
    control sequences."""
    return Text("".join(c if c.isprintable() else "?" for c in str(text)))


def _short(name: str, width: int = 40) -> Text:
    """The end of a long node name: '/stages/stages.2/shortcut/shortcut.0/Conv' keeps its
    layer and op, which say more than its first characters."""
    return _plain(name if len(name) <= width else "…" + name[-(width - 1):])


def layer_table(rows: list[dict], title: str, mixed: dict | None = None) -> Table:
    """One row per quantized layer; with `mixed` (report.json's mixed_precision section) the
    weight bits chosen by `--weight-bits auto` also show what the ILP saw: each layer's
    sensitivity at int8 and int4 (lower is better) and whether it was locked to int8."""
    table = Table(title=title)
    cols = [("#", "right"), ("name", "left"), ("op", "left"), ("output shape", "left"),
            ("MACs", "right"), ("w bits", "right"), ("a bits", "right"), ("out scale", "right"), ("out zp", "right")]
    if mixed:
        cols.append(("sensitivity 8b / 4b", "right"))
        table.caption = (f"sensitivity: {mixed.get('sensitivity_measure', '')} (what the ILP sums; lower is "
                         "better); locked layers stay int8")
    for col, just in cols:
        table.add_column(col, justify=just, overflow="fold")
    planned, locks = (mixed or {}).get("layers", {}), (mixed or {}).get("locks", {})
    for i, r in enumerate(rows):
        cells = [str(i), _short(r["name"]), _plain(r["op"]), "x".join(map(str, r["output_shape"])),
                 f"{r['macs']:,}" if r["macs"] else "",
                 str(r["weight_bits"] or ""), str(r["act_bits"] or ""),
                 f"{r['output_scale']:.4g}" if "output_scale" in r else "",
                 str(r.get("output_zero_point", ""))]
        if mixed:
            p = planned.get(r["name"])
            cells.append("" if p is None else f"{p['sensitivity_int8']:.3g} / {p['sensitivity_int4']:.3g}"
                         + (" (locked)" if r["name"] in locks else ""))
        table.add_row(*cells)
    return table


def inspect_path(path: Path, console: Console, input_shapes: dict | None = None) -> None:
    path = Path(path)
    if path.is_dir():
        if input_shapes:
            raise EdgeqError("--input-shape applies to an .onnx model; a build folder has its shapes",
                             "drop --input-shape, or inspect the .onnx model")
        rep = path / "report.json"
        if not rep.is_file():
            raise EdgeqError(f"{path} has no report.json", "give a folder written by `edgeq compile`")
        report = read_report(rep)
        console.print(layer_table(report["layers"], f"{path} ({report['target']}): quantized layers",
                                  report.get("mixed_precision")))
        _print_pass_log(report.get("passes", []), console)
        print_compile_summary(report, path, console)
        return
    graph = import_onnx(path, input_shapes)
    for note in graph.meta.get("import_notes", []):
        console.print(f"  note: {rich_escape(note)}")
    rows = layer_rows(graph)
    console.print(layer_table(rows, f"{path}: float graph as imported"))
    console.print(f"  MACs / inference: {sum(r['macs'] for r in rows):,}")


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pass_details(entry: dict) -> str:
    """One readable line per log entry: CLE's per-layer weight ranges before -> after,
    a bias shift, a guard decision; anything else as key=value."""
    if "before" in entry and "after" in entry:
        b, a = entry["before"], entry["after"]
        return (f"{entry.get('layer', '')}: weight range {_fmt(b['tensor_range'])} -> "
                f"{_fmt(a['tensor_range'])}, smallest channel {_fmt(b['channel_range_min'])} -> "
                f"{_fmt(a['channel_range_min'])}, median channel "
                f"{_fmt(b['channel_range_median'])} -> {_fmt(a['channel_range_median'])}")
    if "bias_shift_max" in entry:
        what = "bias shift" if entry["pass"] == "correct_bias" else "absorbed bias"
        extra = f" ({entry['mode']})" if "mode" in entry else ""
        return (f"{entry.get('layer', '')}: {what}{extra} max {_fmt(entry['bias_shift_max'])}, "
                f"mean {_fmt(entry.get('bias_shift_mean', 0.0))}")
    if "step" in entry:  # passes/dfq_guard.py
        score = ", ".join(f"{k} {_fmt(entry[k])}" for k in ("sqnr", "top1", "conf_top1") if k in entry)
        kept = "" if "kept" not in entry else (" kept" if entry["kept"] else " dropped")
        return f"step {entry['step']}{kept} (calibration data: {score})"
    return ", ".join(f"{k}={_fmt(v)}" for k, v in entry.items() if k != "pass")


def _print_pass_log(log: list[dict], console: Console) -> None:
    if not log:
        return
    table = Table(title="what the passes changed")
    table.add_column("pass")
    table.add_column("details", overflow="fold")
    for entry in log:
        table.add_row(entry["pass"], _plain(_pass_details(entry)[:300]))
    console.print(table)
