"""`edgeq run`, `edgeq flash`, `edgeq profile` on a build folder.

The folder's report.json names its target; the target's runner does the work. Inputs
in float are quantized with the model's input parameters; int8 inputs are taken as
already quantized.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeq.codegen.train import load_state
from edgeq.errors import CheckMismatch, EdgeqError
from edgeq.graphio.onnx_io import load_graph, save_graph
from edgeq.options import BuildOptions
from edgeq.progress import progress_bar
from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference_streamed
from edgeq.report.report import read_report, write_report
from edgeq.targets import get_target, output_dir, training
from edgeq.targets.qemu import FAULT_STATUS


def _open_build(build_dir: Path):
    build_dir = Path(build_dir)
    rep, qpath = build_dir / "report.json", build_dir / "model.q.onnx"
    if not rep.is_file() or not qpath.is_file():
        raise EdgeqError(f"{build_dir} is not an edgeq build folder (no report.json / model.q.onnx)",
                         "run `edgeq compile MODEL.onnx --target TARGET -o DIR` first")
    return read_report(rep), load_graph(qpath)


def _target(report: dict):
    return get_target(report["target"])


def load_inputs(path: Path, qgraph) -> dict[str, np.ndarray]:
    """Read X.npy / X.npz into int8 feeds with a batch axis; floats get quantized."""
    path = Path(path)
    if not path.is_file():
        raise EdgeqError(f"input file {path} does not exist", "give an .npy or .npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise EdgeqError(f"cannot read {path}: {e}", "save inputs with numpy.save / numpy.savez") from None
    if isinstance(data, np.ndarray):
        if len(qgraph.inputs) != 1:
            raise EdgeqError(f"the model has {len(qgraph.inputs)} inputs but {path.name} holds one array",
                             f"save an .npz with arrays named {', '.join(qgraph.inputs)}")
        arrays = {qgraph.inputs[0]: data}
    else:
        missing = [n for n in qgraph.inputs if n not in data.files]
        if missing:
            raise EdgeqError(f"{path.name} lacks arrays for inputs {missing}",
                             f"name the arrays {', '.join(qgraph.inputs)}")
        try:  # an .npz reads each array on access
            arrays = {n: data[n] for n in qgraph.inputs}
        except ValueError as e:  # object arrays (pickles) are refused, never unpickled
            raise EdgeqError(f"cannot read {path}: {e}",
                             "save numeric arrays (float32 or int8) with numpy.savez") from None
    return quantize_feeds(arrays, qgraph, path.name)


def quantize_feeds(arrays: dict[str, np.ndarray], qgraph, source: str) -> dict[str, np.ndarray]:
    """Arrays per model input -> int8 feeds with a batch axis; floats get quantized."""
    path = Path(source)
    floats, ints = {}, {}
    for name in qgraph.inputs:
        want = tuple(qgraph.tensors[name].shape[1:])
        x = arrays[name]
        if tuple(x.shape) == want or tuple(x.shape) == tuple(qgraph.tensors[name].shape):
            x = x.reshape((-1,) + want) if x.ndim == len(want) + 1 else x[None]
        if tuple(x.shape[1:]) != want:
            raise EdgeqError(f"input {name!r} has shape {tuple(x.shape)}, the model expects (N, {', '.join(map(str, want))})",
                             "reshape the array: batch first, then the model's input shape")
        if len(x) == 0:
            raise EdgeqError(f"input {name!r} in {path.name} holds 0 samples", "give at least one sample (batch first)")
        if x.dtype == np.int8:
            ints[name] = x
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
            bad = int(np.count_nonzero(~np.isfinite(x)))  # after the cast: 1e300 is Inf in float32
            if bad:
                raise EdgeqError(f"input {name!r} in {path.name} holds {bad} NaN/Inf value(s)",
                                 "replace them with finite numbers (e.g. numpy.nan_to_num) before running")
            floats[name] = x
        else:
            raise EdgeqError(f"input {name!r} has dtype {x.dtype}", "give float32 (real values) or int8 (quantized)")
    if floats:
        ints.update(quantize_inputs(qgraph, floats))
    return ints


def run_build(build_dir: Path, input_path: Path, output_path: Path | None, *, raw: bool,
              check: bool, console: Console) -> None:
    """Run the build on its target; with `check`, raise CheckMismatch (after writing the
    outputs, for a look) unless they are bit-identical to the integer reference."""
    report, qgraph = _open_build(build_dir)
    feeds = load_inputs(input_path, qgraph)
    outputs = _target(report).run(Path(build_dir), feeds)
    n = len(next(iter(feeds.values())))
    bad = []
    if check:
        expected = run_reference_streamed(qgraph, feeds)
        bad = [name for name in qgraph.outputs if not np.array_equal(outputs[name], expected[name])]
        if not bad:
            console.print(f"check: {report['target']} outputs are bit-identical to the integer reference "
                          f"({n} inputs)")
    result = outputs if raw else dequantize_outputs(qgraph, outputs)
    if output_path is not None:
        if len(result) == 1:
            np.save(output_path, next(iter(result.values())))
        else:
            np.savez(output_path, **result)
        console.print(f"wrote {output_path}")
    else:
        for name, y in result.items():
            line = f"{name}: shape {tuple(y.shape)} {y.dtype}"
            if y.ndim == 2 and y.shape[1] > 1:
                line += f", argmax {np.argmax(y, axis=1).tolist()[:16]}"
            console.print(line)
    if bad:
        raise CheckMismatch(f"check failed: {report['target']} differs from the integer reference "
                            f"(model.q.onnx) on outputs {bad} over {n} input(s)",
                            "if the build folder is as edgeq wrote it, this is an edgeq bug: please report "
                            "it with the model; recompile if model.q.onnx or the build was changed")


def flash_build(build_dir: Path, probe: str, dry_run: bool, console: Console) -> None:
    """Flash and report; a run whose self-check fails raises CheckMismatch."""
    report, _ = _open_build(build_dir)
    result = _target(report).flash(Path(build_dir), probe, dry_run=dry_run)
    if dry_run:
        console.print(result.get("command", ""))
        return
    for k, v in result.items():
        console.print(f"{k}: {v}")
    status = int(result.get("exit_status", 0))
    if status == FAULT_STATUS or status < 0 or status >= 128:
        raise EdgeqError(f"the flashed firmware crashed (exit status {status})",
                         "this is an edgeq bug: please report it with the model")
    if status:
        raise CheckMismatch(f"the flashed firmware's self-check failed: {status} output(s) differ from the "
                            "integer reference on its embedded test vectors",
                            "if the firmware is as edgeq built it, this is an edgeq bug: please report it "
                            "with the model")


def profile_build(build_dir: Path, device: str, console: Console, **timing) -> dict:
    """Profile on `device`; `timing` (warmup, iterations) is for devices that measure time."""
    report, _ = _open_build(build_dir)
    target = _target(report)
    if timing and not getattr(target, "build_options", False):
        raise EdgeqError(f"--warmup/--iterations time runs on a phone or an aarch64 host; target "
                         f"{report['target']} has no such device", "drop them, or compile with --target arm64")
    prof = target.profile(Path(build_dir), device, **timing)
    report["profile"] = prof
    if "instructions" in prof:
        report["instructions"] = prof["instructions"]
    try:
        write_report(report, Path(build_dir) / "report.json")
    except OSError as e:  # a read-only build still profiles; only the record is skipped
        console.print(f"note: report.json was not updated ({e.strerror or e}); the profile is printed below")
    ops = {l["name"]: l["op"] for l in report.get("layers", [])}
    timed = "latency_median_us" in prof
    if timed:
        table = Table(title=f"{report['target']} on {prof['device']}: wall time over {prof['iterations']} runs "
                            f"(after {prof['warmup']} warm-up), microseconds")
        columns = [("median", "median_us"), ("p90", "p90_us")]
    else:
        table = Table(title=f"{report['target']} on {device}: instructions (exact, from QEMU), not cycles")
        columns = [("instructions", "instructions")]
    table.add_column("layer")
    table.add_column("op")
    for title, _ in columns:
        table.add_column(title, justify="right")
    for layer in prof.get("layers", []):
        op = ops.get(layer["name"], "relayout" if layer["name"] in report.get("relayouts", ()) else "")
        table.add_row(layer["name"], op, *(f"{layer[key]:,}" for _, key in columns))
    if prof.get("layers"):
        console.print(table)
    if timed:
        cores = f" (pinned to cores {prof['cores']})" if "cores" in prof else ""
        console.print(f"latency per inference: median {prof['latency_median_us']:,} us, "
                      f"p90 {prof['latency_p90_us']:,} us{cores}")
    for k in ("instructions", "wall_time_s"):
        if k in prof:
            console.print(f"{k} per inference: {prof[k]:,}" if isinstance(prof[k], int) else f"{k}: {prof[k]}")
    return prof


# ---- edgeq train ---------------------------------------------------------------------------------

def load_training_data(path: Path, qgraph, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """train.npz -> (int8 inputs [N, ...], int64 labels [N]); one clear error per bad file."""
    path = Path(path)
    fix = "save it with numpy.savez(PATH, x=inputs, y=labels): x as for `edgeq run`, y integer class labels"
    if not path.is_file():
        raise EdgeqError(f"training data {path} does not exist", fix)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise EdgeqError(f"cannot read {path}: {e}", fix) from None
    if isinstance(data, np.ndarray) or not {"x", "y"} <= set(data.files):
        have = "one array" if isinstance(data, np.ndarray) else f"arrays {sorted(data.files)}"
        raise EdgeqError(f"{path.name} holds {have}, not the arrays x and y", fix)
    try:
        x, y = data["x"], data["y"]
    except ValueError as e:  # object arrays are refused, never unpickled
        raise EdgeqError(f"cannot read {path}: {e}", fix) from None
    if len(qgraph.inputs) != 1:
        raise EdgeqError(f"training takes models with one input; this one has {len(qgraph.inputs)}",
                         "export the model with a single input")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise EdgeqError(f"labels y in {path.name} have dtype {y.dtype} and shape {tuple(y.shape)}", fix)
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise EdgeqError(f"labels y in {path.name} lie in [{y.min()}, {y.max()}]; the model has {classes} classes",
                         f"give labels in [0, {classes})")
    feeds = quantize_feeds({qgraph.inputs[0]: x}, qgraph, path.name)
    x8 = feeds[qgraph.inputs[0]]
    if len(x8) != len(y):
        raise EdgeqError(f"{path.name} holds {len(x8)} inputs x but {len(y)} labels y", "give one label per input")
    return x8, y.astype(np.int64)


def train_build(build_dir: Path, data_path: Path, epochs: int, lr: float | None, console: Console,
                progress: bool = True) -> dict:
    """`edgeq train`: stream the samples through the build's training step on its target's
    runner, then write the learned parameters back into DIR (model.q.onnx, the build, the
    report) so that run and flash use them. Returns the report's `training` section."""
    build_dir = Path(build_dir)
    if epochs < 1:
        raise EdgeqError(f"--epochs {epochs}", "give one or more epochs")
    report, qgraph = _open_build(build_dir)
    section = report.get("training")
    if not section:
        raise EdgeqError(f"{build_dir} is not a training build (its report.json has no training section)",
                         f"compile it with --train bias (or last:N, auto): `edgeq compile MODEL.onnx --target "
                         f"{report['target']} --train bias -o {build_dir}`")
    output_dir.check_output_dir(build_dir, [Path(data_path)])  # edgeq replaces only a folder it wrote
    output_dir.check_writable(build_dir)
    target = _target(report)
    classes = int(np.prod(qgraph.tensors[qgraph.outputs[0]].shape[1:]))
    x, y = load_training_data(data_path, qgraph, classes)
    if not len(x):
        raise EdgeqError(f"{Path(data_path).name} holds 0 samples", "give at least one sample")
    options = training.options_of(section, lr)
    plan = training.build_plan(qgraph, training.updates_from_json(section["updates"]), options)
    state = training.TrainState(plan)
    saved = build_dir / "train_state.npz"
    if saved.is_file():  # residuals and the draw counter of an earlier `edgeq train`
        with np.load(saved, allow_pickle=False) as z:
            arrays = training.state_arrays_from(state, dict(z))
        load_state(state, arrays)
    setup = training.TrainSetup(plan, state, section["spec"], int(section["budget_bytes"]), section.get("auto"))
    order = np.concatenate([np.arange(len(x))] * epochs)
    xs, ys = x[order], y[order]
    with tempfile.TemporaryDirectory(prefix="edgeq-trainer-") as tmp:  # the trainer with these tables
        work = Path(tmp)
        scratch = report.get("memory_plan", {}).get("scratch_policy", "fit")
        target.build(qgraph, work, copy.deepcopy({k: v for k, v in report.items() if k != "training"}),
                     BuildOptions(scratch=scratch, training=setup))
        with progress_bar(f"training on {report['target']} ({len(xs)} steps)", len(xs), progress) as advance:
            seen = [0]

            def moved(done: int) -> None:
                advance(done - seen[0])
                seen[0] = done
            learned = target.train(work, xs, ys, section["state"], moved, setup)
    load_state(state, learned)
    trained = state.to_graph()
    trained.meta = dict(qgraph.meta)
    with output_dir.staging(build_dir) as tmp:
        for entry in build_dir.iterdir():  # what the build step does not write again
            if entry.name not in (output_dir.MARKER, "src", "obj") and entry.is_file():
                shutil.copy2(entry, tmp / entry.name)
        save_graph(trained, tmp / "model.q.onnx")
        new = {k: v for k, v in report.items() if k not in ("training", "self_check")}
        vectors = _check_vectors(x)
        target.build(trained, tmp, new, BuildOptions({qgraph.inputs[0]: vectors}, scratch,
                                                     training=training.TrainSetup(plan, state, setup.spec,
                                                                                  setup.budget, setup.auto)))
        new["training"]["trained"] = dict(section.get("trained", {}), samples=int(len(x)), epochs=int(epochs),
                                          steps=int(section.get("trained", {}).get("steps", 0)) + len(xs),
                                          lr=options.lr, data=Path(data_path).name)
        np.savez(tmp / "train_state.npz", **training.state_npz(state))
        write_report(new, tmp / "report.json")
        output_dir.install(tmp, build_dir, report["target"], [Path(data_path)])
    return new["training"]


def _check_vectors(x: np.ndarray, count: int = 4) -> np.ndarray:
    return x[:count]
