"""The `edgeq` command line: compile, run, inspect, flash, profile.

Every user-facing failure ends as one line on stderr and an exit status (README, "Exit
codes"): 0 ok, 1 error (an EdgeqError), 2 usage, 3 check mismatch, 130 interrupted,
143 terminated. The command modules do the work, this file only parses and prints.
"""
from __future__ import annotations

import re
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape as rich_escape

from edgeq.errors import EdgeqError

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Compile float ONNX models to integer-only code for edge devices.")
err = Console(stderr=True)
# Piped or redirected, rich would fold tables to 80 columns; a log file reads better wide.
out = Console() if sys.stdout.isatty() else Console(width=160)


def _targets_help() -> str:
    try:
        from edgeq.targets import target_names
        names = ", ".join(target_names())
    except Exception:  # the help must print even on a half-installed machine
        names = "reference, host, cortex-m4, cortex-m7, cortex-m33, cortex-m55, arm64, tflite, ethos-u55-128"
    return f"where the model runs: {names} (`edgeq targets` describes each)"


def _parse_shapes(specs: list[str]) -> dict[str, tuple[int, ...]] | None:
    shapes = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")  # no NAME=: the model's only input ("")
        try:
            if sep and not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
        except ValueError:
            raise EdgeqError(f"cannot read --input-shape {spec!r}",
                             "write it as NAME=1x3x32x32 (or 1x3x32x32 for a model with one input)") from None
    return shapes or None


def _print_version(value: bool) -> None:
    if value:
        from edgeq import __version__
        out.print(f"edgeq {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                          help="print the version and exit")):
    """Compile float ONNX models to integer-only code for edge devices."""


@app.command("compile")
def compile_cmd(
    model: Path = typer.Argument(..., help="float ONNX model (from torch.onnx.export), or an int8 .tflite model (compiled as it is: its own scales, no calibration)"),
    target: str = typer.Option("reference", "--target", "-t", help=_targets_help()),
    board: Optional[str] = typer.Option(None, "--board", help="a real part from `edgeq targets` (e.g. stm32h743, nrf52840, rp2350): its core's cortex-m target, linked against its flash and SRAM"),
    flash_size: Optional[str] = typer.Option(None, "--flash-size", help="cortex-m targets: the part's flash, overriding the target's or --board's (524288, 512K, 1M; K = 1024 bytes)"),
    sram_size: Optional[str] = typer.Option(None, "--sram-size", help="cortex-m targets: the part's SRAM (one contiguous region), overriding the target's or --board's (320K, 1M)"),
    out_dir: Path = typer.Option(Path("build"), "-o", "--output", help="output folder: new, empty, or an edgeq build (replaced); never a folder holding your files"),
    calib: Optional[Path] = typer.Option(None, "--calib", help=".npy (N samples) or .npz (one array per input)"),
    input_shape: list[str] = typer.Option([], "--input-shape", help="NAME=1x3x32x32 (or 1,3,32,32; NAME= may be left out for a one-input model) for inputs with dynamic dims other than the batch"),
    weight_granularity: str = typer.Option("per-channel", "--weight-granularity", help="per-channel | per-tensor"),
    equalize: Optional[bool] = typer.Option(None, "--equalize/--no-equalize", help="cross-layer equalization (default: on for per-tensor weights)"),
    bias_correction: Optional[bool] = typer.Option(None, "--bias-correction/--no-bias-correction", help="bias correction (default: on for per-tensor weights; empirical with --calib, else data-free)"),
    dfq_guard: Optional[bool] = typer.Option(None, "--dfq-guard/--no-dfq-guard", help="keep each of those passes only if not worse on the calibration data (default: on for per-channel weights)"),
    weight_bits: str = typer.Option("8", "--weight-bits", help="8 | 4 (int4 weights, packed two per byte) | auto (4 or 8 per layer: Hessian-aware ILP within the budgets below; needs --calib)"),
    flash_budget: Optional[str] = typer.Option(None, "--flash-budget", help="with auto: budget on the Conv/Gemm weight bytes only (int4 packed; not code, biases or the whole flash): 200000, 200KB (=200000), 196KiB, or 60% of all-int8"),
    firmware_budget: Optional[str] = typer.Option(None, "--firmware-budget", help="with auto, cortex-m* targets: the whole firmware's flash as linked (code, weights, runtime; int4 kernels' code included): 200KB, or 90% of the all-int8 firmware"),
    latency_budget: Optional[str] = typer.Option(None, "--latency-budget", help="with auto, cortex-m* targets: QEMU instructions per inference (not cycles), measured per layer for int8 and int4: 1500000, 1.5M, or 105% of all-int8"),
    bits_sensitivity: str = typer.Option("measured", "--bits-sensitivity", help="with auto: measured (output error with one layer at int4; default) | hawq (Hessian trace x weight perturbation)"),
    keep_ends_int8: bool = typer.Option(True, "--keep-ends-int8/--no-keep-ends-int8", help="with auto: first and last Conv/Gemm stay int8"),
    calib_method: Optional[str] = typer.Option(None, "--calib-method", help="minmax | percentile | mse"),
    calib_percentile: Optional[float] = typer.Option(None, "--calib-percentile", help="percentile method: the upper percentile of each range (default 99.99). 99.999 keeps more headroom; when the calibration images cover only a few scenes it can be better or worse by model: compare on a held-out scene"),
    weight_rounding: str = typer.Option("gptq", "--weight-rounding", help="layers below 8 bits: gptq (error-compensating rounding on the calibration data; needs --calib) | nearest"),
    scratch: str = typer.Option("fast", "--scratch", help="C targets: fast = the smallest arena with the fast "
                                "kernels (a layer whose scratch would raise the peak runs in ranges of rows, its "
                                "scratch in dead bytes; else the fastest plan that fits the part) (default) | fit = "
                                "smallest arena (such a layer runs a slower scratch-free kernel) | always = every "
                                "layer gets its scratch (larger arena)"),
    cpu: Optional[str] = typer.Option(None, "--cpu", help="arm64: the CPU the kernels are for: cortex-a53 (NEON), "
                                      "cortex-a55/a76/a78/x1 (dotprod), cortex-x3, neoverse-n2, max (dotprod + i8mm); "
                                      "host or adb[:SERIAL]: read from this aarch64 machine or the phone "
                                      "that will run it; default cortex-a76"),
    lowering: Optional[str] = typer.Option(None, "--lowering", help="arm64: tvm (TVM-generated kernels; default) | "
                                           "c (edgeq's portable C runtime, the second oracle)"),
    train: Optional[str] = typer.Option(None, "--train", help="C targets: also build an integer training step "
                                        "(edgeq_model_train_step) updating: bias (every bias) | last:N (weights and "
                                        "biases of the last N Conv/Gemm layers) | auto (chosen to fit --train-budget; "
                                        "needs --calib). Then `edgeq train DIR --data train.npz`"),
    train_budget: Optional[str] = typer.Option(None, "--train-budget", help="with --train: SRAM of the training build "
                                               "(arena, trained weights, gradients, stack) in bytes: 262144, 256KiB "
                                               "(default: the part's SRAM; host: 256 KiB)"),
    train_lr: float = typer.Option(0.01, "--train-lr", help="with --train: the SGD learning rate built into the step "
                                   "(`edgeq train --lr` changes it)"),
    train_momentum: float = typer.Option(0.0, "--train-momentum", help="with --train: SGD momentum in [0, 1) "
                                         "(0: none; else one int32 velocity per trained parameter, in SRAM)"),
    state_bits: Optional[int] = typer.Option(None, "--state-bits", help="GRU/LSTM: bits of the state carried "
                                             "between time steps: 16 (default) | 8 (the default of the TFLite "
                                             "targets, whose export has no int16 state)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Compile MODEL for TARGET into DIR (report.json, model.float.onnx, model.q.onnx, build).
    An int8 .tflite MODEL is compiled as it is: TFLite Micro's outputs, bit for bit."""
    from edgeq.driver.pipeline import CompileOptions, compile_model
    from edgeq.report.summary import print_compile_summary

    if weight_bits not in ("8", "4", "auto"):
        raise EdgeqError(f"unknown --weight-bits {weight_bits!r}", "use 8, 4 or auto")
    bits = weight_bits if weight_bits == "auto" else int(weight_bits)
    opts = CompileOptions(target=target, input_shapes=_parse_shapes(input_shape),
                          weight_granularity=weight_granularity, weight_bits=bits, equalize=equalize,
                          flash_budget=flash_budget, latency_budget=latency_budget,
                          firmware_budget=firmware_budget,
                          bits_sensitivity=bits_sensitivity, keep_ends_int8=keep_ends_int8,
                          bias_correction=bias_correction, dfq_guard=dfq_guard, calib_method=calib_method,
                          calib_percentile=calib_percentile,
                          weight_rounding=weight_rounding, scratch=scratch, cpu=cpu, lowering=lowering,
                          board=board, flash_size=flash_size, sram_size=sram_size, train=train,
                          train_budget=train_budget, train_lr=train_lr, train_momentum=train_momentum,
                          state_bits=state_bits,
                          progress=not quiet)
    if not model.is_file():
        raise EdgeqError(f"model file {model} does not exist", "give the path of an .onnx or int8 .tflite file")
    result = compile_model(model, opts, out_dir, calib, log=lambda m: err.print(f"[yellow]note:[/] {terminal_text(m)}"))
    print_compile_summary(result.report, out_dir, out)


@app.command("run")
def run_cmd(
    build_dir: Path = typer.Argument(..., help="a folder written by `edgeq compile`"),
    input: Path = typer.Option(..., "--input", "-i", help=".npy (batch on the first axis) or .npz per input"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write outputs (.npy, or .npz for several)"),
    raw: bool = typer.Option(False, "--raw", help="write raw int8 outputs instead of dequantized float32"),
    check: bool = typer.Option(False, "--check", help="also run the integer reference; exit 3 unless bit-identical"),
):
    """Run a compiled model on its target's runner (Python reference, host process, QEMU board)."""
    from edgeq.driver.runner import run_build
    run_build(build_dir, input, output, raw=raw, check=check, console=out)


@app.command("train")
def train_cmd(
    build_dir: Path = typer.Argument(..., help="a folder written by `edgeq compile --train SPEC`"),
    data: Path = typer.Option(..., "--data", "-d", help=".npz with x (inputs, as for `edgeq run`) and y (integer labels)"),
    epochs: int = typer.Option(1, "--epochs", "-e", help="passes over the data, in its order"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (default: the build's, --train-lr)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Train a --train build on its target's runner (QEMU board, host process), one sample per step,
    then write the learned weights back into DIR so that `edgeq run` and `edgeq flash` use them."""
    from edgeq.driver.runner import train_build
    from edgeq.report.summary import print_training
    section = train_build(build_dir, data, epochs, lr, out, progress=not quiet)
    print_training(section, out)


@app.command("targets")
def targets_cmd():
    """List every target with its board, memory budget and runner."""
    from rich.table import Table
    from edgeq.targets import SKIPPED, all_targets, get_target
    from edgeq.targets.parts import load_parts
    table = Table("target", "what it builds and where it runs", box=None)
    for t in all_targets():
        table.add_row(t.name, t.description)
    out.print(table)
    boards = Table("--board", "part", "flash", "SRAM", "target (QEMU board)", box=None,
                   title="parts (`edgeq compile --board NAME`; --flash-size/--sram-size override)", title_justify="left")
    for name, p in load_parts().items():
        core = get_target(p["target"])
        boards.add_row(name, p["part"], _kib(p["flash_bytes"]), _kib(p["ram_bytes"]),
                       f"{p['target']} ({core.board['machine']})")
    out.print(boards)
    for module, why in SKIPPED.items():
        out.print(f"[dim]targets from {module}.py unavailable: {why}[/dim]")


@app.command("ops")
def ops_cmd(markdown: bool = typer.Option(False, "--markdown", help="print Markdown tables (the README's copy)")):
    """List every op and which stage and target implements it (the op registry's table)."""
    from edgeq.driver import ops_table
    if markdown:
        print(ops_table.markdown(), end="")
    else:
        ops_table.print_tables(out)


def _kib(n: int) -> str:
    return f"{n / (1 << 20):g} MB" if n >= 1 << 20 and n % (1 << 18) == 0 else f"{n // 1024:,} KB"


@app.command("inspect")
def inspect_cmd(
    path: Path = typer.Argument(..., help="an .onnx model or a build folder"),
    input_shape: list[str] = typer.Option([], "--input-shape", help="NAME=1x3x32x32 for dynamic inputs (a model only)"),
):
    """Print a per-layer table: op, shapes, MACs, weight/activation bits, scales."""
    from edgeq.report.summary import inspect_path
    inspect_path(path, out, _parse_shapes(input_shape))


@app.command("flash")
def flash_cmd(
    build_dir: Path = typer.Argument(...),
    probe: str = typer.Option("qemu", "--probe", help="qemu (emulated board) | openocd | pyocd"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the command, do not run it"),
):
    """Flash the firmware ELF into a board (or an emulated one) and report the run."""
    from edgeq.driver.runner import flash_build
    flash_build(build_dir, probe, dry_run, console=out)


@app.command("profile")
def profile_cmd(
    build_dir: Path = typer.Argument(...),
    device: str = typer.Option("qemu", "--device", help="qemu | host | adb[:SERIAL]"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="adb / host (arm64): untimed runs first (default 10)"),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="adb / host (arm64): timed runs (default 50)"),
):
    """Per-layer cost: exact instruction counts on an emulator (qemu); on a phone (adb,
    arm64 builds) or this aarch64 machine (host), median and p90 latency."""
    from edgeq.driver.runner import profile_build
    timing = {k: v for k, v in (("warmup", warmup), ("iterations", iterations)) if v is not None}
    profile_build(build_dir, device, console=out, **timing)


# Typer's usage errors (its own since 0.26, click's before) share this base; found through
# a class every version exports, so the error path imports nothing typer may not have.
_USAGE_BASE = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
SIGNAL_EXIT = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


class Signalled(BaseException):
    """SIGINT / SIGTERM as an exception: `finally` and `except BaseException` blocks (the
    output folder's staging, temporary folders, child processes) clean up on the way out.
    Not a KeyboardInterrupt, which typer would turn into a silent return value."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum, frame):
    raise Signalled(signum)


def _usage_line(e: Exception) -> str:
    ctx = getattr(e, "ctx", None)
    where = f"{ctx.command_path} --help" if ctx is not None else "edgeq --help"
    return f"{e.format_message()} (fix: see `{where}`)"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(text: str) -> str:
    """Text from a model or a path, safe to print: rich markup escaped, and control
    characters (a terminal escape sequence hidden in a node name) shown as '?'."""
    return rich_escape(_CONTROL.sub("?", str(text)))


def _error_line(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)


def main(argv: list[str] | None = None) -> None:
    # handlers can be set only from the main thread; elsewhere Ctrl-C stays Python's own
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _raise_signalled) for s in SIGNAL_EXIT} if in_main else {}
    try:
        code = app(args=argv, prog_name="edgeq", standalone_mode=False)
    except EdgeqError as e:
        _error_line(terminal_text(e))
        code = e.exit_code
    except _USAGE_BASE as e:
        _error_line(terminal_text(_usage_line(e)))
        code = e.exit_code
    except typer.Abort:
        code = 1
    except (Signalled, KeyboardInterrupt) as e:
        code, word = SIGNAL_EXIT[getattr(e, "signum", signal.SIGINT)]
        err.print(word, highlight=False)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    # standalone_mode=False: typer returns an Exit's code (e.g. 0 after --help) or None;
    # success returns (callers in Python carry on), anything else exits with its status
    if isinstance(code, int) and code != 0:
        sys.exit(code)


if __name__ == "__main__":
    main()
