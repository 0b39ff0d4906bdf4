"""Target `arm64`: ARM application CPUs (phones, aarch64 Linux) as one static binary.

    edgeq compile model.onnx --target arm64 [--cpu cortex-a76|host|adb[:SERIAL]] [--lowering tvm|c] -o DIR

`--lowering tvm` (the default) runs every op that has a TVM kernel (the op registry's "tvm"
stage: edgeq.lower_tvm) as a freestanding object TVM generated for the CPU, the others as
edgeq's C kernels, all under edgeq's own model.c, static arena and memory plan: no TVM
runtime on the device. `--lowering c` is the same model.c as the host and Cortex-M
targets (runtime_c), the second oracle. Both link with aarch64-linux-gnu-gcc -static into
DIR/model_arm64 (a glibc static binary also runs from /data/local/tmp on Android).

The binary runs under qemu-aarch64 (`edgeq run`, the build's self-check), natively on an
aarch64 host, or on a phone over adb (`edgeq profile --device adb`). model.c is compiled
with layer marks whose hook lives in the main (edgeq.codegen.mains.arm64_main_c): QEMU's
counting plugin stops on it, and `--bench` reads the clock in it.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgeq import runtime_c
from edgeq.codegen import generate_c
from edgeq.codegen.mains import arm64_main_c
from edgeq.errors import EdgeqError
from edgeq.lower_tvm.cpus import CPUS, Cpu, get_cpu
from edgeq.lower_tvm.model import inner_products, lower_model, model_c, product_label
from edgeq.options import BuildOptions
from edgeq.targets import c_project as cp
from edgeq.targets.adb import profile_on_phone, timing_summary
from edgeq.targets.cpu_detect import detect_cpu, is_detect_spec
from edgeq.targets.elfsize import section_sizes, symbol
from edgeq.targets.mcu import runtime_library, self_check_error
from edgeq.targets.profile_qemu import plugin_library

DEFAULT_CPU = "cortex-a76"    # dotprod (sdot): every big core since 2018 and the A55 little core
LOWERINGS = ("tvm", "c")
CFLAGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-Werror"]
MARKS = ["-DEDGEQ_PROFILE", "-DEDGEQ_LAYER_MARK_IN_MAIN"]
EXE = "model_arm64"
GCC_PKG = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
# `edgeq run`'s limit: base + per input; an ImageNet MobileNetV2 (1.6G instructions) takes
# about 10 s per input under qemu-aarch64 on a loaded machine
RUN_SECONDS = (120, 60)


def resolve_cpu(spec: str | None) -> tuple[Cpu, str | None]:
    """--cpu NAME, or host / adb[:SERIAL] read from the machine that will run the binary
    (targets/cpu_detect.py): the CPU, and how it was detected (None when named)."""
    if is_detect_spec(spec):
        return detect_cpu(spec)
    return get_cpu(spec or DEFAULT_CPU), None


class Arm64Target:
    name = "arm64"
    description = (f"ARM CPUs (phones, aarch64 Linux): static binary, TVM or C kernels (--lowering), "
                   f"--cpu (default {DEFAULT_CPU}); runs on qemu-aarch64, profiles on qemu/adb")
    build_options = True  # build() takes BuildOptions (cpu, lowering), not only test vectors
    # every op needs its C kernel (--lowering c, and the ops without a TVM kernel); the
    # "tvm" stage replaces it where it has a kernel (edgeq ops)
    stages = ("reference", "c")

    def check_options(self, opts) -> None:
        """--cpu and --lowering, before any work (the compile takes minutes)."""
        resolve_cpu(opts.cpu)
        if (opts.lowering or "tvm") == "tvm":
            require_tvm()

    # ---- build -------------------------------------------------------------------------------

    def build(self, qgraph, out_dir: Path, report: dict, options=None) -> None:
        opts = BuildOptions.of(options)
        (cpu, detected), lowering = resolve_cpu(opts.cpu), opts.lowering or "tvm"
        out_dir = Path(out_dir)
        src = out_dir / "src"
        src.mkdir(parents=True, exist_ok=True)
        gcc = cp.require_tool("aarch64-linux-gnu-gcc", GCC_PKG)
        if lowering == "tvm":
            require_tvm()
            plan, objects, how = _write_tvm(qgraph, src, report, cpu)
        else:
            plan, objects, how = cp.write_model(qgraph, src, report, scratch=opts.scratch).plan, [], _c_summary(qgraph)
        info = cp.project_info(qgraph, self.name, plan)
        info.update(cpu=cpu.name, qemu_cpu=cpu.qemu_cpu, lowering=lowering, exe=EXE)
        expected = cp.reference_expected(qgraph, opts.test_vectors)
        n_vec = cp.write_vectors(src, info["io"], opts.test_vectors, expected)
        (src / "main.c").write_text(arm64_main_c())
        exe = _link(src, objects, cpu, gcc, out_dir / EXE)
        cp.save_info(out_dir, info)
        products = inner_products(qgraph, cpu) if lowering == "tvm" else {}   # layer -> smmla | sdot | neon
        report["arm64"] = {"cpu": cpu.name, "inner_product": product_label(products, cpu),
                           "layer_inner_product": products, "lowering": lowering, **how}
        if detected:
            report["arm64"]["cpu_detected"] = detected
        report.update(_measure(src, objects, exe, plan.arena_bytes))
        if n_vec:
            report["self_check"] = _self_check(out_dir, info, n_vec)

    # ---- run -------------------------------------------------------------------------------

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = cp.load_info(out_dir, self.name)
        io = info["io"]
        n, blob = cp.raw_batch(io, feeds)
        res = _exec(out_dir, info, ["--raw", str(n)], blob, timeout=RUN_SECONDS[0] + RUN_SECONDS[1] * n)
        if res.returncode != 0:
            raise EdgeqError(f"the arm64 model exited with status {res.returncode}: "
                             f"{res.stderr.decode(errors='replace').strip()[-500:]}",
                             "this is an edgeq bug: please report it")
        return cp.raw_outputs(io, res.stdout, n)

    # ---- profile -------------------------------------------------------------------------------

    def profile(self, out_dir: Path, device: str = "qemu", warmup: int = 10, iterations: int = 50) -> dict:
        out_dir = Path(out_dir)
        info = cp.load_info(out_dir, self.name)
        if device == "qemu":
            return count_instructions(out_dir, info)
        if warmup < 0 or iterations < 1:
            raise EdgeqError(f"--warmup {warmup} / --iterations {iterations}",
                             "give --warmup >= 0 and --iterations >= 1")
        if device == "host":
            return _profile_host(out_dir, info, warmup, iterations)
        if device == "adb" or device.startswith("adb:"):
            return profile_on_phone(out_dir / EXE, info, device.partition(":")[2] or None, warmup, iterations)
        raise EdgeqError(f"unknown device {device!r} for the arm64 target",
                         "use --device qemu, adb, adb:SERIAL, or host (on an aarch64 machine)")

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        raise EdgeqError("the arm64 target builds an executable, not a firmware image: there is nothing to flash",
                         "run it with `edgeq run DIR` (qemu-aarch64) or `edgeq profile DIR --device adb`")


def require_tvm() -> None:
    try:
        import tvm  # noqa: F401
    except ImportError:
        raise EdgeqError("--lowering tvm needs TVM, which is not installed",
                         "pip install 'edgeq[tvm]' (apache-tvm 0.27), or compile with --lowering c") from None


def _c_summary(qgraph) -> dict:
    ops: dict[str, int] = {}
    for n in qgraph.nodes:
        ops[n.op] = ops.get(n.op, 0) + 1
    return {"tvm_layers": 0, "c_layers": ops, "free_layers": 0, "kernels": 0}


def _write_tvm(qgraph, src: Path, report: dict, cpu: Cpu):
    """model.h (as every C target writes it), model.c calling the TVM kernels, and the
    kernel objects copied into src/kernels/ (the build folder needs no cache to relink)."""
    for n in qgraph.nodes:
        for o in n.outputs:
            if qgraph.tensors[o].dtype not in ("int8", "int16"):  # int16: the recurrent state
                raise EdgeqError(f"layer {n.name} outputs {qgraph.tensors[o].dtype}; the arm64 target is int8 only",
                                 "quantize the model with edgeq.quantize first")
    m = lower_model(qgraph, cpu)
    with tempfile.TemporaryDirectory() as tmp:
        generate_c(m.graph, m.plan, Path(tmp))
        (src / "model.h").write_text((Path(tmp) / "model.h").read_text())
    (src / "model.c").write_text(model_c(m))
    kdir = src / "kernels"
    kdir.mkdir(exist_ok=True)
    objects = []
    for k in sorted({k.symbol: k for k in m.kernels()}.values(), key=lambda k: k.symbol):
        objects.append(kdir / f"{k.symbol}.o")
        shutil.copyfile(k.obj, objects[-1])
    plan = m.plan
    report["arena_bytes"] = plan.arena_bytes
    report["memory_plan"] = {"scratch_policy": "always", "arena_bytes": plan.arena_bytes,
                             "peak_live_bytes": plan.peak_live_bytes, "timeline": plan.timeline,
                             "inplace": [list(p) for p in plan.inplace]}
    how = {"tvm_layers": sum(s.kernel is not None for s in m.steps), "c_layers": m.c_fallbacks(),
           "free_layers": sum(s.free for s in m.steps), "kernels": len(objects)}
    return plan, objects, how


def _link(src: Path, objects: list[Path], cpu: Cpu, gcc: str, exe: Path) -> Path:
    ar = cp.require_tool("aarch64-linux-gnu-ar", "binutils-aarch64-linux-gnu")
    lib = runtime_library([cpu.gcc_flag], CFLAGS, gcc, ar)
    flags = [*CFLAGS, cpu.gcc_flag, *MARKS, f"-I{src}", f"-I{runtime_c.include_dir()}"]
    for name in ("model", "main", "vectors"):
        cp.run_tool([gcc, *flags, "-c", src / f"{name}.c", "-o", src / f"{name}.o"],
                    f"aarch64-linux-gnu-gcc ({name}.c)")
    cp.run_tool([gcc, *flags, "-static", *(src / f"{n}.o" for n in ("model", "main", "vectors")),
                 *objects, lib, "-o", exe], "aarch64-linux-gnu-gcc (link)")
    return exe


def _measure(src: Path, objects: list[Path], exe: Path, arena: int) -> dict:
    """The model's own code and constants (model.o and the kernels; libc and runtime_c
    not counted), the arena, and the whole static binary."""
    code = 0
    for obj in [src / "model.o", *objects]:
        s = section_sizes(obj)
        code += s["text"] + s["rodata"] + s["data"]
    return {"flash_bytes": code, "arena_bytes": arena, "binary_bytes": exe.stat().st_size, "stack_bytes": None}


def on_aarch64() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")


def device_command(out_dir: Path, info: dict) -> list[str]:
    """How this machine runs the binary: natively on aarch64, else under qemu-aarch64
    with the CPU model that has the build's instructions."""
    exe = Path(out_dir) / info.get("exe", EXE)
    if not exe.is_file():
        raise EdgeqError(f"{exe} is missing", f"rebuild with `edgeq compile ... --target arm64 -o {out_dir}`")
    if on_aarch64():
        return [str(exe)]
    return [cp.require_tool("qemu-aarch64", "qemu-user"), "-cpu", info["qemu_cpu"], str(exe)]


def _exec(out_dir: Path, info: dict, args: list[str], stdin: bytes | None, timeout: float):
    try:
        return subprocess.run([*device_command(out_dir, info), *args], input=stdin, capture_output=True,
                              timeout=timeout, text=stdin is None)
    except subprocess.TimeoutExpired:
        raise EdgeqError(f"the arm64 model did not finish within {timeout:.0f} s",
                         "run fewer inputs at a time (a hang is an edgeq bug: please report it)") from None


def _self_check(out_dir: Path, info: dict, n_vec: int) -> dict:
    """Run the embedded vectors (qemu-aarch64, or natively): a build whose outputs differ
    from the integer reference is not shipped."""
    res = _exec(out_dir, info, [], None, timeout=600 + 60 * n_vec)
    parsed = cp.parse_lines(res.stdout, info["io"])
    check = {"vectors": n_vec, "mismatches": len(parsed["mismatches"]), "errors": len(parsed["errors"]),
             "exit_status": res.returncode, "runner": "aarch64 host" if on_aarch64() else f"qemu-aarch64 -cpu {info['qemu_cpu']}",
             "passed": res.returncode == 0 and not parsed["mismatches"] and not parsed["errors"]}
    if not check["passed"]:
        if res.returncode and not parsed["mismatches"] and not parsed["errors"]:
            raise EdgeqError(f"the arm64 binary exited with status {res.returncode} on its self-check: "
                             f"{res.stderr.strip()[-500:]}", "this is an edgeq bug: please report it with the model")
        raise self_check_error(parsed, check, f"qemu-aarch64 ({info['cpu']})", info["io"])
    return check


# ---- instructions on qemu ------------------------------------------------------------------

def profile_input(info: dict) -> dict[str, np.ndarray]:
    """One fixed input (seeded): counts are a property of the build, not of a data set."""
    rng = np.random.default_rng(0)
    return {t["name"]: rng.integers(-128, 128, size=t["shape"], dtype=np.int8) for t in info["io"]["inputs"]}


def count_instructions(out_dir: Path, info: dict | None = None, feeds: dict | None = None) -> dict:
    """Instructions of one inference per layer under qemu-aarch64 (QEMU's TCG plugin counts
    every guest instruction and snapshots at each edgeq_layer_mark: exact, not cycles).
    `feeds`: the input (one sample per graph input; default: profile_input)."""
    out_dir = Path(out_dir)
    info = info or cp.load_info(out_dir, "arm64")
    exe = out_dir / info.get("exe", EXE)
    mark = symbol(exe, "edgeq_layer_mark") if exe.is_file() else None
    if mark is None:
        raise EdgeqError(f"{exe} is missing or has no edgeq_layer_mark",
                         f"rebuild with `edgeq compile ... --target arm64 -o {out_dir}`")
    qemu = cp.require_tool("qemu-aarch64", "qemu-user")
    blob = np.concatenate(cp.to_samples(info["io"], feeds or profile_input(info)), axis=1).tobytes()
    with tempfile.TemporaryDirectory(prefix="edgeq-profile-") as tmp:   # DIR is not written
        counts = Path(tmp) / "counts.txt"
        cmd = [qemu, "-cpu", info["qemu_cpu"], "-plugin", f"{plugin_library()},mark={mark[0]:#x},out={counts}",
               str(exe), "--raw", "1"]
        res = subprocess.run(cmd, input=blob, capture_output=True, timeout=1800)
        if res.returncode != 0:
            raise EdgeqError(f"the arm64 model exited with status {res.returncode} under the counting plugin: "
                             f"{res.stderr.decode(errors='replace').strip()[-500:]}",
                             "this is an edgeq bug: please report it")
        lines = counts.read_text().splitlines() if counts.exists() else []
    marks = [int(l) for l in lines if l.strip().isdigit()]
    n = info["num_layers"]
    if len(marks) < n + 1:
        raise EdgeqError(f"the plugin saw {len(marks)} layer marks, expected {n + 1}",
                         "check that qemu-aarch64 supports -plugin (QEMU >= 4.2 built with plugins)")
    layers = [{"name": name, "instructions": marks[i + 1] - marks[i]} for i, name in enumerate(info["layers"])]
    return {"device": "qemu", "cpu": f"qemu-aarch64 -cpu {info['qemu_cpu']} (for {info['cpu']})",
            "counter": "instructions (QEMU TCG plugin, exact), not cycles",
            "instructions": marks[n] - marks[0], "layers": layers}


# ---- wall time: aarch64 host (a phone: targets/adb.py) ---------------------------------------

def _profile_host(out_dir: Path, info: dict, warmup: int, iterations: int) -> dict:
    if not on_aarch64():
        raise EdgeqError(f"--device host runs the binary on this machine, which is {platform.machine()}, not aarch64",
                         "use --device qemu (instructions under emulation) or --device adb (a phone)")
    res = _exec(out_dir, info, ["--bench", str(warmup), str(iterations)], None, timeout=3600)
    if res.returncode != 0:
        raise EdgeqError(f"the arm64 benchmark exited with status {res.returncode}: {res.stderr.strip()[-500:]}",
                         "this is an edgeq bug: please report it")
    return timing_summary(res.stdout, info, "host", warmup, iterations)


TARGETS = [Arm64Target()]
__all__ = ["Arm64Target", "CPUS", "DEFAULT_CPU", "LOWERINGS", "count_instructions", "timing_summary"]
