"""The compile pipeline: ONNX file -> float passes -> calibration -> quantized graph -> build.

Each stage is a function of its own (import_onnx, run_float_passes, find_ranges,
quantize, Target.build) so tests and users can call any one alone; `compile_model`
chains them and writes DIR atomically (everything goes to a sibling staging folder
that is renamed into place only when the build succeeded, so a failure never leaves a
half-written DIR; targets/output_dir.py says which folders edgeq may replace).

This module lives in targets/ because it is where passes and targets meet (core never
imports either; see design.md's layering).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgeq.calibration import calibrate as cal
from edgeq.calibration import datafree
from edgeq.calibration.calibrate import load_calibration_file
from edgeq.codegen import plan_memory
from edgeq.codegen.kernels import kernel_of
from edgeq.driver.pipeline_tflite import import_as_is
from edgeq.driver.result import CompileResult, test_vectors
from edgeq.errors import EdgeqError
from edgeq.graphio.onnx_io import save_graph
from edgeq.graphio.verify import verify as verify_graph
from edgeq.importer.load import import_onnx
from edgeq.ir import Graph
from edgeq.mixed_precision.pareto import plot
from edgeq.mixed_precision.plan import plan_weight_bits
from edgeq.ops import holds
from edgeq.options import BuildOptions, CompileOptions, parse_budget
from edgeq.passctx import PassContext
from edgeq.passes.absorb_high_bias import absorb_high_bias
from edgeq.passes.correct_bias import correct_bias
from edgeq.passes.correct_bias_integer import correct_bias_integer
from edgeq.passes.dfq_guard import dfq_guard
from edgeq.passes.equalize_cross_layer import equalize_cross_layer
from edgeq.passes.expand_gated_state import expand_gated_state
from edgeq.passes.fold_add_into_bias import fold_add_into_bias
from edgeq.passes.fold_batchnorm import fold_batchnorm
from edgeq.passes.fold_constants import fold_constants
from edgeq.passes.fuse_activation import fuse_activation
from edgeq.passes.remove_identity import remove_identity
from edgeq.passes.round_weights_gptq import round_weights_gptq
from edgeq.quantization.quantize import quantize
from edgeq.reference.interpreter import quantize_inputs
from edgeq.report.report import base_report, write_report
from edgeq.targets import get_target, output_dir
from edgeq.targets.elfsize import function_sizes, layer_constant_bytes
from edgeq.targets.mcu import DEFAULT_HEAP, DEFAULT_STACK, MCUTarget
from edgeq.targets.parts import get_part
from edgeq.targets.training import DEFAULT_BUDGET, TrainOptions, setup_training, training_scratch
from edgeq.tflite_import import is_tflite

Pass = Callable[[Graph, PassContext], Graph]


def float_passes(opts: CompileOptions) -> list[Pass]:
    """The float pass list, in order. Each comment states why it sits where it does."""

    per_tensor = opts.weight_granularity == "per-tensor"
    equalize = per_tensor if opts.equalize is None else opts.equalize
    correct = per_tensor if opts.bias_correction is None else opts.bias_correction

    # an int8 recurrent state: the state updates become Mul/Add before anything reads the graph
    passes: list[Pass] = [expand_gated_state] if opts.recurrent_state_bits == 8 else []
    passes += [
        fold_constants,       # first: later patterns expect constants, not subgraphs
        remove_identity,      # Identity/Dropout would hide Conv->BN and Conv->Relu pairs
        fold_batchnorm,       # before CLE: CLE rescales the folded weights; records BN stats
        fold_add_into_bias,   # MatMul+Add -> Gemm with bias, before activation fusion
        fuse_activation,      # Relu/Relu6 become clamps; CLE reads them to find ReLU pairs
    ]
    dfq: list[tuple[str, list[Pass]]] = []
    if equalize:
        dfq.append(("CLE + absorption", [
            equalize_cross_layer,  # after fusion (needs act bounds), before bias absorption
            absorb_high_bias,      # uses the BN statistics rescaled by CLE
        ]))
    if correct:
        # last: corrects the final weights' quantization error
        dfq.append(("bias correction", [correct_bias]))
    guard = (not per_tensor) if opts.dfq_guard is None else opts.dfq_guard
    if dfq and guard:
        # per-channel weights: the passes only nudge; keep each step only if it is not
        # worse on the calibration data (passes/dfq_guard.py, docs/dfq.md)
        passes.append(dfq_guard(dfq))
    else:
        passes += [p for _, step in dfq for p in step]
    return passes


def run_float_passes(graph: Graph, ctx: PassContext, passes: list[Pass], verify: bool = False) -> Graph:
    for p in passes:
        graph = p(graph, ctx)
        if verify:
            verify_graph(graph)
    return graph


def find_ranges(graph: Graph, calib: dict[str, np.ndarray] | None, opts: CompileOptions, notices: list[str]):
    if calib is None:
        notices.append(datafree.DATA_FREE_NOTICE)
        return datafree.data_free_ranges(graph)
    return cal.calibrate(graph, calib, progress=opts.progress, options=opts.calibration)


def _calibration_report(opts: CompileOptions, feeds) -> dict:
    if feeds is None:
        return {"method": "data-free", "samples": 0}
    return opts.calibration.describe(len(next(iter(feeds.values()))))


def _limit_samples(calib: dict[str, np.ndarray], limit: int) -> dict[str, np.ndarray]:
    return {k: v[:limit] for k, v in calib.items()}


def compile_model(model, opts: CompileOptions, out_dir: Path | None = None,
                  calib: str | Path | np.ndarray | dict | None = None,
                  log: Callable[[str], None] = print) -> CompileResult:
    """The whole of `edgeq compile`: returns the graphs and the report (and writes DIR).
    An int8 .tflite model skips the float stages (compile_tflite)."""

    target = resolve_target(opts)  # fail on a bad target or board name before any work
    opts = dataclasses.replace(opts, target=target.name)  # --board may have chosen it
    if hasattr(target, "check_options"):
        target.check_options(opts)    # e.g. arm64: the CPU name, TVM installed
    tflite_model = isinstance(model, (str, Path)) and is_tflite(model)
    if not tflite_model:
        opts.check_data(calib is not None)
    if opts.train is not None and not hasattr(target, "train"):
        raise EdgeqError(f"--train builds a C training step; target {opts.target!r} has none",
                         "use --target host or a cortex-m target")
    inputs = [Path(f) for f in (model, calib) if isinstance(f, (str, Path))]  # DIR must not hold them
    if out_dir is not None:
        output_dir.check_output_dir(Path(out_dir), inputs)
        output_dir.check_writable(Path(out_dir))
    if tflite_model:  # an int8 model compiled as it is
        return compile_tflite(Path(model), opts, out_dir, calib is not None, target, inputs)
    timings: dict[str, float] = {}
    notices: list[str] = []

    t0 = time.perf_counter()
    graph = import_onnx(model, opts.input_shapes)
    timings["import_s"] = time.perf_counter() - t0
    notices += graph.meta.get("import_notes", [])  # e.g. a dynamic batch axis compiled as 1; logged below

    feeds = None
    if calib is not None:
        if isinstance(calib, (str, Path)):
            feeds = load_calibration_file(calib, graph)
        elif isinstance(calib, np.ndarray):
            feeds = {graph.inputs[0]: calib}
        else:
            feeds = dict(calib)
        feeds = _limit_samples(feeds, opts.calib_limit)

    ctx = PassContext(calib=_as_samples(feeds), options=opts.passes)
    t0 = time.perf_counter()
    graph = run_float_passes(graph, ctx, float_passes(opts))
    timings["passes_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ranges = find_ranges(graph, feeds, opts, notices)
    timings["calibrate_s"] = time.perf_counter() - t0
    for n in notices:
        log(n)

    bits_plan = None
    if opts.weight_bits == "auto":
        # after the float passes and calibration (the planner measures the graph that will be
        # quantized; a latency budget quantizes it all-8 and all-4 to profile on QEMU)
        t0 = time.perf_counter()
        opts, bits_plan = plan_bits(graph, feeds, ranges, opts, target)
        timings["bit_plan_s"] = time.perf_counter() - t0

    # the passes after the bit plan see it (opts.passes), and ctx.float_graph is the
    # reference the integer bias correction measures against
    post = PassContext(calib=ctx.calib, options=opts.passes, float_graph=graph)
    t0 = time.perf_counter()
    rounded = _run_noting(round_weights_gptq, graph, post, notices, log)
    timings["weight_rounding_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    qgraph = quantize(rounded, ranges, weight_granularity=opts.weight_granularity,
                      weight_bits=opts.weight_bits)
    timings["quantize_s"] = time.perf_counter() - t0
    if out_dir is not None and hasattr(target, "check_fit"):
        # before bias correction and the build: a model too big for the part fails now
        target.check_fit(qgraph, base_report(qgraph, opts.target), scratch=opts.scratch)

    if feeds is not None and opts.int_bias_correction is not False:
        # after quantize: measures the integer graph itself (every upstream rounding and
        # clip included) against the float graph; changes only int32 biases
        t0 = time.perf_counter()
        qgraph = _run_noting(correct_bias_integer, qgraph, post, notices, log)
        timings["bias_correction_s"] = time.perf_counter() - t0

    setup = None
    if opts.train is not None:
        t0 = time.perf_counter()
        setup = training_setup(qgraph, target, opts, feeds)
        timings["training_plan_s"] = time.perf_counter() - t0

    report = base_report(qgraph, opts.target)
    if bits_plan is not None:
        report["mixed_precision"] = bits_plan
    if "bias_correction" in qgraph.meta:
        report["integer_bias_correction"] = qgraph.meta["bias_correction"]
    if "gptq" in rounded.meta:
        report["gptq_rounding"] = rounded.meta["gptq"]
    report.update(passes=ctx.log, notices=notices, timings=timings,
                  options={"weight_granularity": opts.weight_granularity,
                           "weight_bits": _bits_option(opts.weight_bits),
                           "weight_bits_per_layer": {k: int(v["weight_bits"]) for k, v in
                                                     qgraph.meta["quant_layers"].items()
                                                     if "weight_bits" in v},
                           "calibration_samples": 0 if feeds is None else int(len(next(iter(feeds.values())))),
                           "calibration": _calibration_report(opts, feeds)})

    if out_dir is None:
        return CompileResult(None, graph, qgraph, report)

    out_dir = Path(out_dir)
    with output_dir.staging(out_dir) as tmp:  # removed on any failure or signal
        save_graph(graph, tmp / "model.float.onnx")
        save_graph(qgraph, tmp / "model.q.onnx")
        vectors = test_vectors(qgraph, feeds, opts.test_vectors)
        t0 = time.perf_counter()
        if bits_plan is not None and bits_plan.get("pareto"):
            plot(bits_plan["pareto"], tmp / "pareto.png", "SQNR vs float (dB, fake-quant)")
            bits_plan["pareto_plot"] = "pareto.png"
        target.build(qgraph, tmp, report, opts.build(vectors, training=setup))
        if setup is not None:
            check_training_fit(report, opts.target)
        timings["build_s"] = time.perf_counter() - t0
        write_report(report, tmp / "report.json")
        output_dir.install(tmp, out_dir, opts.target, inputs)
    return CompileResult(out_dir, graph, qgraph, report)


def training_budget(target, opts: CompileOptions) -> int:
    """--train-budget in bytes, default the part's SRAM (the host: 256 KB, the issue's bound)."""
    if opts.train_budget is not None:
        return int(parse_budget(opts.train_budget, 1.0, "--train-budget"))
    board = getattr(target, "board", None)
    return int(board["ram_bytes"]) if board else DEFAULT_BUDGET


def training_setup(qgraph: Graph, target, opts: CompileOptions, feeds):
    """The `--train` stage: resolve the spec (auto measures on the calibration data) and plan."""
    budget = training_budget(target, opts)
    probe = None if feeds is None else quantize_inputs(qgraph, feeds)[qgraph.inputs[0]]
    board = getattr(target, "board", {}) or {}
    reserves = (board.get("stack_bytes", DEFAULT_STACK) + board.get("heap_bytes", DEFAULT_HEAP)) if board else 0
    inference = plan_memory(qgraph, scratch=training_scratch(opts.scratch)).arena_bytes + reserves
    return setup_training(qgraph, opts.train.strip(), budget, TrainOptions(lr=opts.train_lr, momentum=opts.train_momentum),
                          probe, inference)


def check_training_fit(report: dict, target: str) -> None:
    """A training build over its budget fails (after the build measured it)."""
    t = report["training"]
    if t["sram_bytes"] > t["budget_bytes"]:
        parts = (f"{t['memory']['arena_bytes']:,}-byte training arena (forward, kept activations, gradients)"
                 f", {t['state_sram_bytes']:,} bytes of trained parameters and residuals")
        if t.get("stack_bytes") is not None:
            parts += f", {t['stack_bytes']:,} bytes of stack"
        raise EdgeqError(f"the --train {t['spec']} build needs {t['sram_bytes']:,} bytes of SRAM on {target} ({parts}); "
                         f"the training budget is {t['budget_bytes']:,}",
                         "train fewer layers (--train bias, a smaller last:N, or auto), or raise --train-budget")


def compile_tflite(model: Path, opts: CompileOptions, out_dir: Path | None, has_calib: bool,
                   target, inputs) -> CompileResult:
    """`edgeq compile model.tflite`: the file's own int8 graph (pipeline_tflite.py), built as
    compile_model builds a quantized graph. DIR has no model.float.onnx (there is none)."""
    qgraph, report = import_as_is(model, opts, has_calib)
    if out_dir is not None and hasattr(target, "check_fit"):
        target.check_fit(qgraph, base_report(qgraph, opts.target), scratch=opts.scratch)
    if out_dir is None:
        return CompileResult(None, None, qgraph, report)
    out_dir = Path(out_dir)
    with output_dir.staging(out_dir) as tmp:  # removed on any failure or signal
        save_graph(qgraph, tmp / "model.q.onnx")
        t0 = time.perf_counter()
        target.build(qgraph, tmp, report, opts.build(test_vectors(qgraph, None, opts.test_vectors)))
        report["timings"]["build_s"] = time.perf_counter() - t0
        write_report(report, tmp / "report.json")
        output_dir.install(tmp, out_dir, opts.target, inputs)
    return CompileResult(out_dir, None, qgraph, report)


def _run_noting(rewrite: Pass, graph: Graph, ctx: PassContext, notices: list[str], log) -> Graph:
    """Run one pass, then show the user what it noticed."""
    seen = len(ctx.notices)
    graph = rewrite(graph, ctx)
    for msg in ctx.notices[seen:]:
        notices.append(msg)
        log(msg)
    return graph


def resolve_target(opts: CompileOptions):
    """The target of opts, built for its --board part and --flash-size/--sram-size. A board
    sets the target when that was left at the default (reference) and must agree with it
    otherwise."""
    target = get_target(opts.target)
    if opts.board is not None:
        part = get_part(opts.board)
        if target.name not in ("reference", part["target"]):
            raise EdgeqError(f"--board {opts.board} is a {part['target']} part, but --target is {target.name}",
                             f"drop --target (the board sets it), or use --target {part['target']}")
        target = get_target(part["target"]).for_part(part)
    if opts.flash_size is None and opts.sram_size is None:
        return target
    if not isinstance(target, MCUTarget):
        raise EdgeqError(f"--flash-size/--sram-size set a part's memory, and target {target.name} builds for no part",
                         "use them with --board NAME or a cortex-m target")
    return target.with_budget(flash_bytes=opts.flash_size, ram_bytes=opts.sram_size)


def plan_bits(graph: Graph, feeds, ranges, opts: CompileOptions, target=None):
    """The `--weight-bits auto` stage: (opts with weight_bits = {layer: bits}, report section)."""
    target = resolve_target(opts) if target is None else target
    plan, section = plan_weight_bits(graph, feeds, ranges, target=opts.target,
                                     measure=firmware_measure(target),
                                     flash_budget=opts.flash_budget, latency_budget=opts.latency_budget,
                                     firmware_budget=opts.firmware_budget,
                                     sensitivity=opts.bits_sensitivity, keep_ends_int8=opts.keep_ends_int8,
                                     ties=opts.bits_ties, per_channel=opts.weight_granularity == "per-channel",
                                     progress=opts.progress, rounding=opts.weight_rounding)
    # the plan replaces "auto" and the budgets it was made for
    return dataclasses.replace(opts, weight_bits=plan, flash_budget=None, latency_budget=None,
                               firmware_budget=None), section


def firmware_measure(target):
    """The mixed-precision cost model's view of a firmware build (cost_model.Measure), or
    None for a target that builds no firmware."""
    if not isinstance(target, MCUTarget):
        return None

    def measure(qgraph, profile: bool) -> dict:
        report = base_report(qgraph, target.name)
        # the emulated board's flash, not the part's: the all-int8 build is measured precisely
        # when it may not fit the part (that is why a budget was given); the planned firmware
        # is still linked against the part's flash afterwards
        budget = {"flash_bytes": target.board.get("qemu_flash_bytes", target.board["flash_bytes"])}
        with tempfile.TemporaryDirectory(prefix="edgeq-cost-") as tmp:
            target.build(qgraph, Path(tmp), report, BuildOptions(budget=budget))
            return {"flash": int(report["flash_bytes"]), "functions": function_sizes(Path(tmp) / "fw.elf"),
                    "constants": layer_constant_bytes(Path(tmp)),
                    "kernels": {n.name: kernel_of(n, qgraph).function for n in qgraph.nodes if holds("weighted", n)},
                    "profile": target.profile(Path(tmp), "qemu") if profile else None}
    return measure


def _bits_option(bits: int | dict) -> int | dict[str, int]:
    """The weight_bits option as plain JSON (numpy ints in a plan dict would not serialise)."""
    return {str(k): int(v) for k, v in bits.items()} if isinstance(bits, dict) else int(bits)


def _as_samples(feeds: dict[str, np.ndarray] | None) -> list[dict[str, np.ndarray]] | None:
    if feeds is None:
        return None
    n = len(next(iter(feeds.values())))
    return [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(n)]


