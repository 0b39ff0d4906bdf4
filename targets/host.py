"""Target `host`: the generated C compiled by the system gcc into a native executable.

Same model.c as the microcontrollers, built with -O2 -std=c99 -Wall -Wextra -Werror, so
the host run is the quickest check that the generated C equals the integer reference.
`run` streams raw int8 samples through stdin/stdout (`model_host --raw N`), so any batch
runs without a rebuild; `profile` reports host wall time (no instruction counts).
"""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from edgeq import runtime_c
from edgeq.codegen.kernels import PORTABLE
from edgeq.codegen.mains import host_main_c, host_train_main_c, train_vectors_c
from edgeq.errors import EdgeqError
from edgeq.options import BuildOptions
from edgeq.targets import c_project as cp
from edgeq.targets.c_project import runtime_library, self_check_error
from edgeq.targets import training
from edgeq.targets.elfsize import section_sizes

CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
EXE = "model_host"
TRAINER = "model_train"
# `edgeq run`'s limit: base + per input (an ImageNet MobileNetV2 took 1.2 s per input on a
# loaded 2-core machine); past it, one line, not a traceback
RUN_SECONDS = (120, 10)


class HostTarget:
    name = "host"
    stages = ("reference", "c")  # the C kernels, checked against the reference (edgeq ops)
    # The portable NCHW kernels (the reference lowering, and what a CPU without DSP/MVE runs);
    # PORTABLE_NHWC builds the channels-last path's portable C instead (a second oracle).
    kernels = PORTABLE
    description = "this machine: generated C + runtime_c built with the system gcc (quick bit-exactness check)"

    def build(self, qgraph, out_dir: Path, report: dict, options: BuildOptions | dict | None = None) -> None:
        opts = BuildOptions.of(options)  # a dict alone: the test vectors
        test_vectors = opts.test_vectors
        out_dir = Path(out_dir)
        src = out_dir / "src"
        src.mkdir(parents=True, exist_ok=True)
        build = cp.write_model(qgraph, src, report, self.kernels, scratch=opts.scratch, training=opts.training)
        plan = build.plan
        info = cp.project_info(build.graph, self.name, build.plan, build.kernels)
        expected = cp.reference_expected(qgraph, test_vectors)
        n_vec = cp.write_vectors(src, info["io"], test_vectors, expected)
        (src / "main.c").write_text(host_main_c())
        self._compile(out_dir, src)
        cp.save_info(out_dir, info)
        report.update(self._measure(out_dir, plan.arena_bytes))
        if opts.training is not None:
            self._build_trainer(qgraph, opts.training, out_dir, src, report, test_vectors)
        if n_vec:
            res = self._exec(out_dir, [], None, timeout=60)
            parsed = cp.parse_lines(res.stdout, info["io"])
            check = {"vectors": n_vec, "mismatches": len(parsed["mismatches"]),
                     "errors": len(parsed["errors"]), "exit_status": res.returncode,
                     "passed": res.returncode == 0 and not parsed["mismatches"] and not parsed["errors"]}
            report["self_check"] = check
            if not check["passed"]:  # the same C would be wrong on a board: do not ship it
                raise self_check_error(parsed, check, "host", info["io"])

    def _compile(self, out_dir: Path, src: Path, cflags: list[str] = CFLAGS) -> Path:
        """model.o, main.o, vectors.o in src/, linked with the cached runtime library (other
        cflags, e.g. sanitizers, apply to the runtime and the link too)."""
        gcc = cp.require_tool("gcc", "gcc")
        lib = runtime_library([], cflags, gcc, cp.require_tool("ar", "binutils"))
        names = ["model", "main", "vectors"] + (["train_state"] if (src / "train_state.c").exists() else [])
        for name in names:
            cp.run_tool([gcc, *cflags, f"-I{src}", f"-I{runtime_c.include_dir()}", "-c", src / f"{name}.c",
                         "-o", src / f"{name}.o"], f"host gcc ({name}.c)")
        objs = [src / f"{name}.o" for name in names]
        cp.run_tool([gcc, *cflags, *objs, lib, "-o", out_dir / EXE], "host gcc (link)")
        return out_dir / EXE

    # ---- training (edgeq compile --train) ------------------------------------------------------
    def _build_trainer(self, qgraph, setup, out_dir: Path, src: Path, report: dict, test_vectors) -> None:
        """DIR/model_train (the trainer), checked against the reference on the test vectors."""
        x = next(iter(test_vectors.values())) if test_vectors else None
        n = 0 if x is None else min(len(x), training.CHECK_STEPS)
        labels = training.check_labels(qgraph, n)
        (src / "train_main.c").write_text(host_train_main_c())
        header, source = train_vectors_c(np.zeros((0, 1), np.int8) if x is None else x[:n], labels)
        (src / "train_vectors.c").write_text(source)
        self.link_trainer(out_dir, src)
        state = section_sizes(src / "train_state.o")
        report["training"].update(flash_bytes=report["flash_bytes"], state_sram_bytes=state["data"] + state["bss"],
                                  sram_bytes=report["arena_bytes"] + state["data"] + state["bss"], stack_bytes=None,
                                  instructions_per_step=None, trainer=TRAINER)
        if n:
            res = self._exec(out_dir, [], None, timeout=60, exe=TRAINER)
            got, steps, errors = training.parse_state(res.stdout, report["training"]["state"])
            if errors or res.returncode:
                raise EdgeqError(f"the training step failed on this machine: {errors[:3]} (exit {res.returncode})",
                                 "this is an edgeq bug: please report it with the model")
            want = training.reference_state(setup, x[:n], labels)
            report["training"]["self_check"] = training.self_check(setup, got, want, "this machine", steps)

    def link_trainer(self, out_dir: Path, src: Path, cflags: list[str] = CFLAGS) -> Path:
        gcc = cp.require_tool("gcc", "gcc")
        lib = runtime_library([], cflags, gcc, cp.require_tool("ar", "binutils"))
        for name in ("train_main", "train_vectors", "train_state"):
            cp.run_tool([gcc, *cflags, f"-I{src}", f"-I{runtime_c.include_dir()}", "-c", src / f"{name}.c",
                         "-o", src / f"{name}.o"], f"host gcc ({name}.c)")
        objs = [src / f"{name}.o" for name in ("model", "train_main", "train_vectors", "train_state")]
        cp.run_tool([gcc, *cflags, *objs, lib, "-o", out_dir / TRAINER], "host gcc (link trainer)")
        return out_dir / TRAINER

    def train(self, out_dir: Path, x: np.ndarray, labels: np.ndarray, layout: list[dict], progress,
              setup=None) -> list[np.ndarray]:
        """Stream (x, label) through DIR/model_train, one step each; returns the learned state.
        `progress(steps_done)` is called as the trainer reports steps."""
        exe = Path(out_dir) / TRAINER
        if not exe.is_file():
            raise EdgeqError(f"{exe} is missing", "recompile with `edgeq compile ... --train SPEC --target host`")
        blob = training.stream_blob(x, labels)
        proc = subprocess.Popen([str(exe), "--stream", str(len(x))], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def feed():
            try:
                proc.stdin.write(blob)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        lines, done = [], 0
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.startswith("step "):
                    done += 1
                    progress(done)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        writer.join()
        err = proc.stderr.read().decode(errors="replace").strip()
        state, steps, errors = training.parse_state("".join(lines), layout)
        if proc.returncode or errors or steps != len(x):
            raise EdgeqError(f"the host trainer failed after {steps} of {len(x)} steps (exit {proc.returncode}"
                             f"{', step errors ' + str(errors[:3]) if errors else ''}{': ' + err if err else ''})",
                             "this is an edgeq bug: please report it with the model")
        return state

    def _measure(self, out_dir: Path, arena: int) -> dict:
        """Host numbers: the model's code and constants from its object, the arena."""
        s = section_sizes(out_dir / "src" / "model.o")
        return {"flash_bytes": s["text"] + s["rodata"] + s["data"], "arena_bytes": arena,
                "sram_bytes": s["data"] + s["bss"], "stack_bytes": None}

    def _exec(self, out_dir: Path, args: list[str], stdin: bytes | None, timeout: float, exe: str = EXE):
        exe = Path(out_dir) / exe
        if not exe.is_file():
            raise EdgeqError(f"{exe} is missing", f"rebuild with `edgeq compile ... --target host -o {out_dir}`")
        try:
            return subprocess.run([str(exe), *args], input=stdin, capture_output=True, timeout=timeout,
                                  text=stdin is None)
        except subprocess.TimeoutExpired:
            raise EdgeqError(f"the host model did not finish within {timeout:.0f} s",
                             "run fewer inputs at a time (a hang is an edgeq bug: please report it)") from None

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = cp.load_info(out_dir, self.name)
        io = info["io"]
        n, blob = cp.raw_batch(io, feeds)
        res = self._exec(out_dir, ["--raw", str(n)], blob, timeout=RUN_SECONDS[0] + RUN_SECONDS[1] * n)
        if res.returncode != 0:
            raise EdgeqError(f"the host model exited with status {res.returncode}: "
                             f"{res.stderr.decode(errors='replace').strip()}", "this is an edgeq bug: please report it")
        return cp.raw_outputs(io, res.stdout, n)

    def profile(self, out_dir: Path, device: str = "host") -> dict:
        if device.startswith("adb"):
            adb_missing(device)
        if device != "host":
            raise EdgeqError(f"the host target runs on this machine, not on {device!r}",
                             "use --device host, or compile for a cortex-m target to profile on qemu")
        return self._bench(Path(out_dir))

    def _bench(self, exe_dir: Path, reps: int = 200) -> dict:
        t0 = time.perf_counter()
        res = self._exec(exe_dir, ["--bench", str(reps)], None, timeout=600)
        wall = time.perf_counter() - t0
        if res.returncode != 0 or not res.stdout.startswith("ns_per_inference"):
            raise EdgeqError("the host benchmark failed (it needs one embedded test vector)",
                             "recompile with test vectors (the default)")
        ns = int(res.stdout.split()[1])
        return {"device": "host", "wall_time_s": ns * 1e-9, "repetitions": reps,
                "process_time_s": wall, "note": "host wall time per inference; no instruction counts"}

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        raise EdgeqError("the host target builds an executable for this machine; there is nothing to flash",
                         "compile with --target cortex-m7 (or another cortex-m target) to flash a board")


def bench_sources_on_host(out_dir: Path, io: dict) -> dict:
    """Wall time of another target's generated model (DIR/src/model.c) built for this
    machine: a quick host-side figure for any C build (the same C, a different CPU)."""
    import shutil as sh
    import tempfile
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="edgeq-host-bench-") as tmp:  # DIR is not written
        work = Path(tmp)
        for name in ("model.c", "model.h"):
            sh.copy(Path(out_dir) / "src" / name, work / name)
        feeds = {t["name"]: rng.integers(-128, 128, size=t["shape"], dtype=np.int8) for t in io["inputs"]}
        cp.write_vectors(work, io, feeds, None)
        (work / "main.c").write_text(host_main_c())
        target = HostTarget()
        target._compile(work, work)
        return target._bench(work)


def adb_missing(device: str) -> None:
    """`--device adb` on a build that is not an arm64 binary: say which build is."""
    raise EdgeqError(f"--device {device} runs a phone binary, and this build is not one",
                     "compile with --target arm64 and profile that build (edgeq profile DIR --device adb)")


TARGETS = [HostTarget()]
