"""What the C targets (host, cortex-m*) share: writing the generated project, running tools
with clear errors, embedding test vectors and parsing what the mains print.

A build folder DIR gets:
    DIR/src/        model.h, model.c (with profile marks behind -DEDGEQ_PROFILE), main.c,
                    vectors.h/.c, and target files (startup.c, link.ld)
    DIR/build.json  what run/profile/flash need without the graph: I/O names, shapes,
                    sizes, the board, compiler flags
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgeq import runtime_c
from edgeq.codegen import PORTABLE, CBuild, KernelChoice, generate_c, io_info, plan_build
from edgeq.codegen.mains import vectors_c
from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.planning.memory_plan import MemoryPlan
from edgeq.reference.interpreter import run_reference_streamed
from edgeq.targets.training import TrainSetup, generate_training_model

# runtime_c's flags for every Cortex-M build (the boards add their CPU flags)
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections"]
TOOLCHAIN_PKG = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
SETUP_FIX = "run `make setup` (or: sudo apt-get install --no-install-recommends {pkg})"
APT_FIX = "sudo apt-get install --no-install-recommends {pkg}"
# The Debian packages scripts/setup.sh installs (tests/test_fit_and_hints.py keeps this in step):
# only for these does "run `make setup`" fix a missing tool.
SETUP_APT_PACKAGES = {"gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm", "qemu-user",
                      "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "gdb-multiarch",
                      "dataset-fashion-mnist", "python3-venv"}


def require_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        fix = SETUP_FIX if set(package.split()) <= SETUP_APT_PACKAGES else APT_FIX
        raise EdgeqError(f"{tool} is not installed (Debian package {package})", fix.format(pkg=package))
    return path


def run_tool(cmd: list[str], what: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run a build tool; a failure becomes an EdgeqError quoting the tool's own message."""
    try:
        res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise EdgeqError(f"{what} timed out after {timeout:.0f} s", "retry, or report the model") from None
    if res.returncode != 0:
        raise EdgeqError(f"{what} failed:\n{(res.stderr or res.stdout).strip()[-3000:]}",
                         "this is an edgeq bug if the model compiled: please report it")
    return res


def write_model(qgraph: Graph, src: Path, report: dict, kernels: KernelChoice = PORTABLE,
                scratch: str = "fast", ram_limit: int | None = None, training: TrainSetup | None = None) -> CBuild:
    """Lower the graph for `kernels` (layouts), plan memory with their scratch under the
    scratch policy (ram_limit: the part's SRAM left for the arena), generate
    model.h/.c (with marks) and record the plan in the report. `training`: the TrainSetup
    of a --train build (model.c also holds the training step; `kernels` is not used)."""
    for n in qgraph.nodes:
        for o in n.outputs:
            if qgraph.tensors[o].dtype not in ("int8", "int16"):  # int16: the recurrent state
                raise EdgeqError(f"layer {n.name} outputs {qgraph.tensors[o].dtype}; the C runtime is int8 only",
                                 "quantize the model with edgeq.quantize first")
    policy = scratch
    if training is None:
        build = plan_build(qgraph, kernels, policy, ram_limit)
        generate_c(build.graph, build.plan, src, profile_marks=True, kernels=build.kernels)
    else:  # a --train build: the portable NCHW kernels (targets/training.py says why)
        build = generate_training_model(qgraph, training, src, report, policy)
    plan = build.plan
    report["arena_bytes"] = plan.arena_bytes
    model_nodes = {n.name for n in qgraph.nodes}
    report["relayouts"] = [n.name for n in build.graph.nodes if n.name not in model_nodes]
    report["memory_plan"] = {**build.report(policy),
                             "arena_bytes": plan.arena_bytes, "peak_live_bytes": plan.peak_live_bytes,
                             "timeline": plan.timeline, "inplace": [list(p) for p in plan.inplace]}
    return build


def batch_of(io: dict) -> int:
    """The model's own batch (inputs' first axis; 1 for every model edgeq imports)."""
    return int(io["inputs"][0]["shape"][0]) if io["inputs"] else 1


def to_samples(io: dict, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Feeds [N, ...] per input -> one [N / model batch, bytes] int8 array per input."""
    b = batch_of(io)
    arrays = []
    for t in io["inputs"]:
        if t["name"] not in feeds:
            raise EdgeqError(f"no data for model input {t['name']!r}", "give one array per model input")
        x = np.ascontiguousarray(feeds[t["name"]], dtype=np.int8)
        if x.size % t["bytes"] or x.shape[0] % b:
            raise EdgeqError(f"input {t['name']!r} has shape {x.shape}, the model takes {t['shape']} per run",
                             "give a batch along the first axis")
        arrays.append(x.reshape(-1, t["bytes"]))
    if len({len(a) for a in arrays}) > 1:
        raise EdgeqError("model inputs have different batch sizes", "give equal batches")
    return arrays


def raw_batch(io: dict, feeds: dict[str, np.ndarray]) -> tuple[int, bytes]:
    """Feeds -> (runs, the bytes a `--raw N` binary reads on stdin: each run's inputs in turn)."""
    samples = to_samples(io, feeds)
    return len(samples[0]), np.concatenate(samples, axis=1).tobytes() if samples else b""


def raw_outputs(io: dict, stdout: bytes, runs: int) -> dict[str, np.ndarray]:
    """A `--raw N` binary's stdout (each run's outputs in turn) -> {name: [N, ...]}."""
    out = np.frombuffer(stdout, dtype=np.int8).reshape(runs, -1)
    per_output, off = [], 0
    for t in io["outputs"]:
        per_output.append(out[:, off:off + t["bytes"]])
        off += t["bytes"]
    return from_samples(io, per_output)


def from_samples(io: dict, per_output: list[np.ndarray]) -> dict[str, np.ndarray]:
    """[runs, bytes] per output -> {name: [N, ...]} with the model's shapes."""
    res = {}
    for t, a in zip(io["outputs"], per_output):
        shape = list(t["shape"])
        res[t["name"]] = np.asarray(a, dtype=np.int8).reshape([-1] + shape[1:])
    return res


def write_vectors(src: Path, io: dict, feeds: dict[str, np.ndarray] | None,
                  expected: dict[str, np.ndarray] | None) -> int:
    """vectors.h/.c with the given inputs (and expected outputs); returns the count."""
    inputs = to_samples(io, feeds) if feeds else []
    exp = None
    if expected is not None and inputs:
        exp = [np.ascontiguousarray(expected[t["name"]], dtype=np.int8).reshape(len(inputs[0]), -1)
               for t in io["outputs"]]
    header, source = vectors_c(inputs, exp)
    (src / "vectors.h").write_text(header)
    (src / "vectors.c").write_text(source)
    return len(inputs[0]) if inputs else 0


def reference_expected(qgraph: Graph, vectors: dict[str, np.ndarray] | None):
    if not vectors:
        return None
    return run_reference_streamed(qgraph, vectors, progress=False)


def parse_lines(text: str, io: dict) -> dict:
    """The mains' text protocol (edgeq.codegen.mains) -> outputs, mismatches, errors, stack."""
    outs: dict[tuple[int, int], bytes] = {}
    res = {"mismatches": [], "errors": [], "stack_bytes": None, "heap_bytes": None}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "out":
            outs[(int(parts[1]), int(parts[2]))] = bytes.fromhex(parts[3] if len(parts) > 3 else "")
        elif parts[0] == "mismatch":
            res["mismatches"].append((int(parts[1]), int(parts[2])))
        elif parts[0] == "error":
            res["errors"].append((int(parts[1]), int(parts[2])))
        elif parts[0] in ("stack", "heap"):
            res[f"{parts[0]}_bytes"] = int(parts[1])
    runs = 1 + max((v for v, _ in outs), default=-1)
    per_output = []
    for k, t in enumerate(io["outputs"]):
        rows = [np.frombuffer(outs.get((v, k), b""), dtype=np.int8) for v in range(runs)]
        if any(r.size != t["bytes"] for r in rows):
            raise EdgeqError(f"the device printed an incomplete output {t['name']!r}",
                             "see the runner's output above; this is an edgeq bug")
        per_output.append(np.stack(rows) if rows else np.zeros((0, t["bytes"]), np.int8))
    res["runs"] = runs
    res["outputs"] = from_samples(io, per_output)
    return res


def save_info(out_dir: Path, info: dict) -> None:
    (Path(out_dir) / "build.json").write_text(json.dumps(info, indent=1))


def load_info(out_dir: Path, target: str) -> dict:
    path = Path(out_dir) / "build.json"
    if not path.is_file():
        raise EdgeqError(f"{out_dir} has no {target} build (build.json is missing)",
                         f"run `edgeq compile MODEL.onnx --target {target} -o {out_dir}` first")
    return json.loads(path.read_text())


def project_info(graph: Graph, target: str, plan: MemoryPlan, kernels: KernelChoice | None = None) -> dict:
    """build.json: the firmware's layers are the lowered graph's (the model's nodes and the
    relayouts between layouts); `kernels` says which variants model.c calls."""
    info = {"target": target, "arena_bytes": plan.arena_bytes, "num_layers": len(graph.nodes),
            "layers": [n.name for n in graph.nodes], "io": io_info(graph)}
    if kernels is not None:
        info["kernels"] = {"layout": kernels.layout, "isa": list(kernels.isa) or ["portable"]}
    return info


def cache_dir() -> Path:
    d = Path(os.environ.get("EDGEQ_CACHE", Path(tempfile.gettempdir()) / "edgeq-cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def runtime_library(cpu_flags: list[str], cflags: list[str] = CFLAGS, compiler: str | None = None,
                    archiver: str | None = None) -> Path:
    """runtime_c built for one CPU (or the host), cached by the sources', flags' and
    compiler's hash, so a build compiles only its own model."""
    gcc = compiler or require_tool("arm-none-eabi-gcc", TOOLCHAIN_PKG)
    files = runtime_c.sources() + runtime_c.headers()
    h = hashlib.sha256(" ".join([gcc, *cpu_flags, *cflags]).encode())
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    lib = cache_dir() / f"libeqrt-{h.hexdigest()[:16]}.a"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        run_tool([gcc, *cpu_flags, *cflags, f"-I{runtime_c.include_dir()}", "-c",
                     *runtime_c.sources()], f"{Path(gcc).name} (runtime_c)", cwd=tmp)
        objs = sorted(Path(tmp).glob("*.o"))
        ar = archiver or require_tool("arm-none-eabi-ar", TOOLCHAIN_PKG)
        run_tool([ar, "rcs", Path(tmp) / "lib.a", *objs], Path(ar).name)
        os.replace(Path(tmp) / "lib.a", lib)  # atomic: parallel builds may race here
    return lib


def self_check_error(parsed: dict, check: dict, machine: str, io: dict) -> EdgeqError:
    """The firmware's outputs differ from the integer reference on its embedded vectors
    (or a kernel returned an error): the build is wrong and must not ship."""
    names = [t["name"] for t in io["outputs"]]
    where = [f"vector {v} output {names[k]!r}" for v, k in parsed["mismatches"][:5]]
    where += [f"vector {v} kernel status {rc}" for v, rc in parsed["errors"][:5]]
    more = check["mismatches"] + check["errors"] - len(where)
    return EdgeqError(
        f"the firmware's self-check failed on {'this machine' if machine == 'host' else 'QEMU ' + machine}: {check['mismatches']} output(s) differ from "
        f"the integer reference and {check['errors']} run(s) failed over {check['vectors']} embedded test "
        f"vector(s) (exit status {check['exit_status']}): " + ", ".join(where) + (f" and {more} more" if more > 0 else ""),
        "this is an edgeq bug (the generated C or a kernel disagrees with the reference): "
        "please report it with the model; `edgeq compile --target host` checks the same C on this machine")
