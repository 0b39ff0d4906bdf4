"""Targets cortex-m4 / -m7 / -m33 / -m55: firmware ELFs for real parts, run on QEMU boards.

build: the generated model + runtime_c + startup.c + a firmware main, cross-compiled with
arm-none-eabi-gcc and linked into DIR/fw.elf against the real part's flash/RAM budget
(boards/boards.json; a --board part of boards/parts.json, `MCUTarget.with_budget` or
BuildOptions.budget override it). The
firmware embeds the test vectors and their expected outputs from the integer reference,
so a build run on QEMU checks itself (exit status = mismatches; any mismatch fails the
build with an EdgeqError naming the vector and output) and measures its stack. The build
also writes memory_timeline.png (the memory plan's live bytes per layer) beside report.json.

run: relinks the firmware with the given inputs embedded (in chunks), runs it on QEMU and
parses the printed outputs. profile: relinks with -DEDGEQ_PROFILE layer marks and counts
instructions with the TCG plugin (targets/plugin). flash: targets/flash.py.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from string import Template

import numpy as np

from edgeq import runtime_c
from edgeq.codegen import KernelChoice, plan_build
from edgeq.codegen.kernels import choice_for_cpu
from edgeq.codegen.mains import firmware_main_c, firmware_train_main_c, train_vectors_c
from edgeq.codegen.train import load_state, state_arrays
from edgeq.errors import EdgeqError
from edgeq.options import BuildOptions
from edgeq.planning.memory_plan import plot_timeline
from edgeq.targets import c_project as cp, qemu
from edgeq.targets.c_project import (CFLAGS, TOOLCHAIN_PKG, cache_dir, runtime_library,  # noqa: F401  (public here too)
                                     self_check_error)
from edgeq.targets import training
from edgeq.targets.elfsize import memory_report, section_sizes, symbol, symbol_sizes
from edgeq.targets.flash import flash_firmware
from edgeq.targets.host import adb_missing, bench_sources_on_host
from edgeq.targets.profile_qemu import plugin_library, profile_on_qemu
from edgeq.targets.parts import fitting_parts

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-Wl,--gc-sections",
           "-Wl,--no-warn-rwx-segments"]
DEFAULT_STACK = 4096   # stack reserve (bytes): measured peaks are ~300 B; painted and checked
DEFAULT_HEAP = 1024    # newlib's semihosting stdio set-up mallocs ~440 bytes (measured, painted)
RUN_CHUNK_BYTES = 64 * 1024  # inputs embedded per `run` firmware
TRAIN_CHUNK_BYTES = 256 * 1024  # samples embedded per training firmware (`edgeq train`: one QEMU run each)
QEMU_SECONDS = (120, 60)     # QEMU timeout: base + per inference (QEMU does ~10^8 instr/s)
# Code floor for the early fit check: the smallest firmware measured (one 16x8 Gemm,
# cortex-m33) has 7,604 B besides its constants, MLPerf ad01 8,616 B; half of that leaves
# room for constants the report counts but the C may store more compactly, so the estimate
# never rejects a model that would link.
MIN_CODE_BYTES = 4096


def load_boards() -> dict[str, dict]:
    data = json.loads((BOARDS_DIR / "boards.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _gcc() -> str:
    return cp.require_tool("arm-none-eabi-gcc", TOOLCHAIN_PKG)


def vector_bytes(elf: Path) -> int:
    """Flash taken by embedded test vectors (vectors.c's vec_in* / vec_expected* arrays)."""
    return sum(size for name, size in symbol_sizes(elf, "STT_OBJECT").items()
               if name.startswith(("vec_in", "vec_expected")))


def _beyond_emulated_board(mem: dict, board: dict) -> str:
    """Why QEMU's board cannot hold this firmware ('' when it can): a --board part may have
    more memory than the board that emulates its core."""
    for what, used, has in (("flash", mem["flash_bytes"], board.get("qemu_flash_bytes")),
                            ("SRAM", mem["static_ram_bytes"] + mem["stack_reserve"] + mem["heap_reserve"],
                             board.get("qemu_ram_bytes"))):
        if has is not None and used > has:
            return f"its {used:,} bytes of {what} exceed the {has:,} of QEMU's {board['machine']}"
    return ""


class MCUTarget:
    stages = ("reference", "c")  # the C kernels, checked against the reference (edgeq ops)

    def __init__(self, name: str, board: dict, overrides: dict | None = None):
        self.name = name
        self.board = dict(board, **(overrides or {}))
        core = name.replace("cortex-", "Cortex-").replace("-m", "-M")
        self.description = (f"{core} firmware for {self.board['part'].split(' (')[0]} "
                            f"({self.board['flash_bytes'] // 1024} KB flash, {self.board['ram_bytes'] // 1024} KB SRAM), "
                            f"runs on QEMU {self.board['machine']}")

    def with_budget(self, flash_bytes: int | None = None, ram_bytes: int | None = None,
                    stack_bytes: int | None = None) -> "MCUTarget":
        """The same target with other memory budgets (e.g. a bigger part of the family)."""
        o = {k: v for k, v in (("flash_bytes", flash_bytes), ("ram_bytes", ram_bytes),
                               ("stack_bytes", stack_bytes)) if v is not None}
        return MCUTarget(self.name, self.board, o)

    def for_part(self, part: dict) -> "MCUTarget":
        """The same core and QEMU board with a catalogue part's name and memories (parts.py)."""
        return MCUTarget(self.name, self.board, {k: part.get(k) for k in
                                                 ("part", "flash_bytes", "ram_bytes", "openocd_board", "pyocd_target")})

    # ---- build ------------------------------------------------------------------------------
    @property
    def kernels(self) -> KernelChoice:
        """Channels-last DSP (M4/M7/M33) or MVE (M55) kernels (codegen.kernels.choice_for_cpu)."""
        return choice_for_cpu(self.name)

    @staticmethod
    def arena_limit(board: dict) -> int:
        """The part's SRAM left for the arena: what the default scratch plan ("fast") must fit."""
        return board["ram_bytes"] - board.get("stack_bytes", DEFAULT_STACK) - board.get("heap_bytes", DEFAULT_HEAP)

    def check_fit(self, qgraph, report: dict, scratch: str = "fast") -> None:
        """Right after quantization, before the build: fail when the model surely does not fit
        the part. Flash: the constants as stored plus a code floor; SRAM: the memory plan's
        arena plus the stack and heap reserves (all in the linker's RAM region)."""
        board = self.board
        part = f"{board['part'].split(' (')[0]} ({self.name})"
        flash = int(report["weights_bytes"]) + MIN_CODE_BYTES
        arena = plan_build(qgraph, self.kernels, scratch, self.arena_limit(board)).plan.arena_bytes
        stack, heap = board.get("stack_bytes", DEFAULT_STACK), board.get("heap_bytes", DEFAULT_HEAP)
        sram = arena + stack + heap
        short, fixes = [], []
        if flash > board["flash_bytes"]:
            short.append(f"at least {flash:,} bytes of flash ({report['weights_bytes']:,} of weights and constants "
                         f"+ at least {MIN_CODE_BYTES:,} of code), the part has {board['flash_bytes']:,}")
            fixes.append("int4 weights (--weight-bits 4, or auto with a --firmware-budget)")
        if sram > board["ram_bytes"]:
            short.append(f"at least {sram:,} bytes of SRAM ({arena:,}-byte activation arena + {stack:,} stack + "
                         f"{heap:,} heap reserve), the part has {board['ram_bytes']:,}")
            fixes.append("a smaller input")
        if short:  # the parts named are those with room for both
            raise EdgeqError(f"the model does not fit {part}: it needs " + "; and ".join(short),
                             f"{fitting_parts(flash, sram)}; or use a smaller model, " + " or ".join(fixes))

    def build(self, qgraph, out_dir: Path, report: dict, options: BuildOptions | dict | None = None) -> None:
        opts = BuildOptions.of(options)  # a dict alone: the test vectors
        test_vectors = opts.test_vectors
        out_dir = Path(out_dir)
        budget = {k: int(v) for k, v in opts.budget.items() if v is not None}
        board = dict(self.board, **budget)  # e.g. the emulated board's flash for a measurement build
        src, obj = out_dir / "src", out_dir / "obj"
        src.mkdir(parents=True, exist_ok=True)
        obj.mkdir(exist_ok=True)
        setup = opts.training  # a --train build's TrainSetup (its model runs the portable kernels)
        build = cp.write_model(qgraph, src, report, self.kernels, scratch=opts.scratch,
                               ram_limit=self.arena_limit(board), training=setup)
        plan = build.plan
        info = cp.project_info(build.graph, self.name, build.plan, build.kernels)
        info["board"] = board
        report["memory_plan"]["direct"] = plan.direct  # layers whose kernel scratch did not fit
        later = [] if setup is None else ["loss"] + [f"back {n.name}" for n in setup.plan.backward]
        plot_timeline(plan, info["layers"], out_dir / "memory_timeline.png", board["ram_bytes"], later)
        report["memory_plan"]["plot"] = "memory_timeline.png"
        expected = cp.reference_expected(qgraph, test_vectors)
        n_vec = cp.write_vectors(src, info["io"], test_vectors, expected)
        (src / "main.c").write_text(firmware_main_c())
        shutil.copy(BOARDS_DIR / "startup.c", src / "startup.c")
        self._linker_script(board, src / "link.ld")
        objs = ["model", "main", "startup", "vectors"] + (["train_state"] if (src / "train_state.c").exists() else [])
        for name in objs:
            self._compile(board, src / f"{name}.c", obj / f"{name}.o")
        cp.save_info(out_dir, info)
        try:
            self._link(board, out_dir, src / "link.ld", objs, out_dir / "fw.elf")
        except EdgeqError as e:
            if "FLASH overflowed" not in str(e) or not (n_vec or "_body.h" in (src / "model.c").read_text()):
                raise
            n_vec = self._relink_smaller(board, out_dir, qgraph, report, opts, info, n_vec)
        mem = memory_report(out_dir / "fw.elf")
        vec_bytes = vector_bytes(out_dir / "fw.elf")
        report.update(board={k: board[k] for k in ("machine", "part", "flash_bytes", "ram_bytes")},
                      flash_bytes=mem["flash_bytes"] - vec_bytes, firmware_flash_bytes=mem["flash_bytes"],
                      test_vector_bytes=vec_bytes, static_ram_bytes=mem["static_ram_bytes"],
                      stack_reserve_bytes=mem["stack_reserve"], firmware="fw.elf")
        too_big = _beyond_emulated_board(mem, board)
        if shutil.which("qemu-system-arm") is None or too_big:
            why = too_big or "qemu-system-arm is missing"
            report["notices"] = report.get("notices", []) + [
                f"{why}: the firmware was built but not run (no self-check, no stack measurement)"]
            report.update(stack_bytes=None, sram_bytes=mem["static_ram_bytes"])
            return
        elf = out_dir / "fw.elf"
        if test_vectors and not n_vec:
            elf, test_vectors = self._check_firmware(out_dir, info, test_vectors, expected)
        runs = len(next(iter(test_vectors.values()))) if test_vectors else 0
        res = qemu.run_firmware(board["machine"], elf, timeout=QEMU_SECONDS[0] + QEMU_SECONDS[1] * runs)
        qemu.check_status(res, board["machine"])
        parsed = cp.parse_lines(res.stdout, info["io"])
        stack = parsed["stack_bytes"]
        reserve = mem["stack_reserve"]
        if stack is not None and stack >= reserve - 16:  # the paint is gone to the bottom
            raise EdgeqError(f"the firmware used its whole {reserve:,}-byte stack reserve (it may have overflowed)",
                             "please report it with the model (the reserve can be raised only from "
                             "Python: get_target(...).with_budget(stack_bytes=...))")
        # sram_bytes = static data (arena included) + measured stack; the heap that newlib's
        # semihosting stdio takes is the harness's, reported apart as heap_bytes.
        report.update(stack_bytes=stack, heap_bytes=parsed["heap_bytes"],
                      sram_bytes=mem["static_ram_bytes"] + (stack or 0))
        if test_vectors:
            check = {"vectors": parsed["runs"], "mismatches": len(parsed["mismatches"]),
                     "errors": len(parsed["errors"]), "exit_status": res.status,
                     "passed": res.status == 0 and not parsed["mismatches"] and not parsed["errors"],
                     "firmware": elf.name}
            report["self_check"] = check
            if not check["passed"]:
                raise self_check_error(parsed, check, board["machine"], info["io"])
        if setup is not None:
            self._build_trainer(qgraph, setup, out_dir, board, report, test_vectors)

    # ---- training (edgeq compile --train) -----------------------------------------------------
    def _trainer_elf(self, out_dir: Path, board: dict, x: np.ndarray, labels: np.ndarray, work: Path,
                     state_c: str | None = None, qemu_sizes: bool = False) -> Path:
        """A training firmware: the build's model.o and startup.o, a train main, these samples
        (and another train_state.c, e.g. the state reached by the previous chunk)."""
        work.mkdir(parents=True, exist_ok=True)
        header, source = train_vectors_c(x, labels)
        (work / "vectors.h").write_text(header)
        (work / "vectors.c").write_text(source)
        (work / "train_main.c").write_text(firmware_train_main_c())
        shutil.copy(out_dir / "src" / "model.h", work / "model.h")
        (work / "train_state.c").write_text(state_c if state_c is not None else (out_dir / "src" / "train_state.c").read_text())
        for name in ("vectors", "train_main", "train_state"):
            self._compile(board, work / f"{name}.c", work / f"{name}.o")
        self._linker_script(board, work / "link.ld", qemu_sizes=qemu_sizes)
        elf = work / "fw_train.elf"
        self._link(board, out_dir, work / "link.ld",
                   ["model", "startup", work / "train_main.o", work / "vectors.o", work / "train_state.o"], elf)
        return elf

    def _build_trainer(self, qgraph, setup, out_dir: Path, board: dict, report: dict, test_vectors) -> None:
        """DIR/fw_train.elf, linked against the part's memory: measured (flash, static RAM,
        stack, instructions per step) and checked against the reference on the test vectors."""
        x = next(iter(test_vectors.values())) if test_vectors else np.zeros((0,) + tuple(qgraph.tensors[qgraph.inputs[0]].shape[1:]), np.int8)
        n = min(len(x), training.CHECK_STEPS)
        labels = training.check_labels(qgraph, n)
        elf = self._trainer_elf(out_dir, board, x[:n], labels, out_dir / "obj" / "train")
        shutil.copy(elf, out_dir / "fw_train.elf")
        mem = memory_report(elf)
        vec = vector_bytes(elf) + 2 * n
        t = report["training"]
        t.update(firmware="fw_train.elf", flash_bytes=mem["flash_bytes"] - vec, static_ram_bytes=mem["static_ram_bytes"],
                 state_sram_bytes=self._state_bytes(out_dir), stack_reserve_bytes=mem["stack_reserve"],
                 heap_reserve_bytes=mem["heap_reserve"], stack_bytes=None, instructions_per_step=None)
        if shutil.which("qemu-system-arm") is None or not n:
            t["sram_bytes"] = mem["static_ram_bytes"] + mem["stack_reserve"]
            return
        mark = symbol(elf, "edgeq_train_mark")
        counts = out_dir / "obj" / "train" / "counts.txt"
        res = qemu.run_firmware(board["machine"], elf, timeout=QEMU_SECONDS[0] + QEMU_SECONDS[1] * n,
                                plugin=plugin_library(), plugin_args={"mark": hex(mark[0] & ~1), "out": str(counts)})
        qemu.check_status(res, board["machine"])
        got, steps, errors = training.parse_state(res.stdout, t["state"])
        if errors or res.status:
            raise EdgeqError(f"the training step failed on QEMU {board['machine']}: {errors[:3]} (exit {res.status})",
                             "this is an edgeq bug: please report it with the model")
        marks = [int(l) for l in counts.read_text().split("\n") if l.strip().isdigit()] if counts.exists() else []
        per_step = [marks[2 * i + 1] - marks[2 * i] for i in range(len(marks) // 2)]
        stack = cp.parse_lines(res.stdout, {"outputs": []})["stack_bytes"]
        t.update(stack_bytes=stack, sram_bytes=mem["static_ram_bytes"] + (stack or mem["stack_reserve"]),
                 instructions_per_step=max(per_step) if per_step else None,
                 instructions_per_step_all=per_step,
                 instructions_note="QEMU TCG plugin: exact instructions of edgeq_model_train_step (forward, "
                                   "loss, backward, updates), not cycles")
        want = training.reference_state(setup, x[:n], labels)
        t["self_check"] = training.self_check(setup, got, want, f"QEMU {board['machine']}", steps)

    def _state_bytes(self, out_dir: Path) -> int:
        s = section_sizes(out_dir / "obj" / "train_state.o")
        return s["data"] + s["bss"]

    def train(self, out_dir: Path, x: np.ndarray, labels: np.ndarray, layout: list[dict], progress,
              setup=None) -> list[np.ndarray]:
        """Train on QEMU in chunks of samples: each chunk is a firmware starting from the
        state the previous one printed (its train_state.c regenerated); returns the state."""
        out_dir = Path(out_dir)
        info = cp.load_info(out_dir, self.name)
        board = info["board"]
        per = max(1, TRAIN_CHUNK_BYTES // max(int(np.prod(x.shape[1:])), 1))
        state = state_arrays(setup.state)
        done = 0
        with tempfile.TemporaryDirectory(prefix="edgeq-train-") as scratch:
            for start in range(0, len(x), per):
                xs, ys = x[start:start + per], labels[start:start + per]
                load_state(setup.state, state)
                state_c = training.state_source(setup)
                elf = self._trainer_elf(out_dir, board, xs, ys, Path(scratch) / f"chunk{start}", state_c, qemu_sizes=True)
                res = qemu.run_firmware(board["machine"], elf, timeout=QEMU_SECONDS[0] + QEMU_SECONDS[1] * len(xs))
                qemu.check_status(res, board["machine"])
                state, steps, errors = training.parse_state(res.stdout, layout)
                if errors or res.status or steps != len(xs):
                    raise EdgeqError(f"the training firmware failed on QEMU {board['machine']} after {done + steps} "
                                     f"steps (exit {res.status}{', errors ' + str(errors[:3]) if errors else ''})",
                                     "this is an edgeq bug: please report it with the model")
                done += steps
                progress(done)
        return state

    def _check_firmware(self, out_dir: Path, info: dict, vectors: dict, expected: dict) -> tuple[Path, dict]:
        """The self-check firmware for a model that fits the part but not with its test vectors:
        all of them on the emulated board, or, when the board's flash is the part's own (the
        Cortex-M55's 512 KB ITCM), as many as fit, at least one. Returns it and the vectors it holds."""
        n = len(next(iter(vectors.values())))
        while True:
            try:
                part = {k: v[:n] for k, v in vectors.items()}
                return self._relink_with_vectors(out_dir, info, part, "check",
                                                 expected={k: v[:n] for k, v in expected.items()}), part
            except EdgeqError as e:
                if "FLASH overflowed" not in str(e):
                    raise
                if n == 1:  # the model fits the part; its check does not fit the emulated board
                    over = re.findall(r"FLASH overflowed by ([\d,]+) bytes", str(e))
                    raise EdgeqError(f"the firmware fits the part, but not with even one embedded test vector "
                                     f"to check it on QEMU's {self.board['machine']} (flash overflowed by "
                                     f"{over[0] if over else '?'} bytes)",
                                     "use a part with more flash (--board), or a smaller model or input") from None
                n //= 2

    def _linker_script(self, board: dict, path: Path, qemu_sizes: bool = False) -> None:
        text = Template((BOARDS_DIR / "link.ld.in").read_text()).substitute(
            flash_origin=hex(board["flash_origin"]), ram_origin=hex(board["ram_origin"]),
            flash_bytes=board["qemu_flash_bytes" if qemu_sizes else "flash_bytes"],
            ram_bytes=board["qemu_ram_bytes" if qemu_sizes else "ram_bytes"],
            heap_bytes=board.get("heap_bytes", DEFAULT_HEAP), stack_bytes=board.get("stack_bytes", DEFAULT_STACK))
        path.write_text(text)

    def _relink_smaller(self, board: dict, out_dir: Path, qgraph, report: dict, opts: BuildOptions, info: dict,
                        n_vec: int) -> int:
        """Link a firmware that overflowed flash again with less in it: the layers' shared
        kernels instead of one specialised copy per layer (the same memory plan), then, if
        still too big, without the test vectors (a second firmware linked with the emulated
        board's sizes self-checks it). Returns the vectors kept."""
        src, obj, elf = out_dir / "src", out_dir / "obj", out_dir / "fw.elf"
        objs = ["model", "main", "startup", "vectors"] + (["train_state"] if (src / "train_state.c").exists() else [])
        if "_body.h" in (src / "model.c").read_text():
            cp.write_model(qgraph, src, report, self.kernels.shared(), scratch=opts.scratch,
                           ram_limit=self.arena_limit(board), training=opts.training)
            report["notices"] = report.get("notices", []) + [
                "the layers call the shared kernels: one specialised copy per layer did not fit the flash"]
            self._compile(board, src / "model.c", obj / "model.o")
            try:
                self._link(board, out_dir, src / "link.ld", objs, elf)
                return n_vec
            except EdgeqError as e:
                if not (n_vec and "FLASH overflowed" in str(e)):
                    raise
        # The model fits but not with its test vectors: ship it without them.
        n_vec = cp.write_vectors(src, info["io"], None, None)
        self._compile(board, src / "vectors.c", obj / "vectors.o")
        self._link(board, out_dir, src / "link.ld", objs, elf)
        return n_vec

    def _compile(self, board: dict, source: Path, obj: Path, extra: tuple[str, ...] = ()) -> None:
        cp.run_tool([_gcc(), *board["cpu_flags"], *CFLAGS, *extra, f"-I{source.parent}",
                     f"-I{runtime_c.include_dir()}", "-c", source, "-o", obj], f"arm-none-eabi-gcc ({source.name})")

    def _link(self, board: dict, out_dir: Path, script: Path, objs: list[str | Path], elf: Path) -> None:
        """objs: names of the build's objects (DIR/obj/NAME.o) or paths of others."""
        files = [o if isinstance(o, Path) else out_dir / "obj" / f"{o}.o" for o in objs]
        cmd = [_gcc(), *board["cpu_flags"], *LDFLAGS, "-T", script, *files,
               runtime_library(board["cpu_flags"]), "-o", elf]
        try:
            cp.run_tool(cmd, "arm-none-eabi-gcc (link)")
        except EdgeqError as e:
            raise (self._overflow_error(str(e.cause), board, out_dir) or e) from None

    def _overflow_error(self, message: str, board: dict, out_dir: Path) -> EdgeqError | None:
        """The linker's "region `RAM' overflowed by N bytes" as a user-facing error."""
        found = re.findall(r"region `(\w+)' overflowed by (\d+) bytes?", message)  # ld: "1 byte"
        if not found:
            return None
        budget = {"FLASH": board["flash_bytes"], "RAM": board["ram_bytes"]}
        parts = [f"{region} overflowed by {int(n):,} bytes (budget {budget.get(region, 0):,})" for region, n in found]
        if any(region == "RAM" for region, _ in found):
            arena = cp.load_info(out_dir, self.name).get("arena_bytes", 0) if (out_dir / "build.json").exists() else 0
            parts.append(f"RAM holds the {arena:,}-byte activation arena, a "
                         f"{board.get('stack_bytes', DEFAULT_STACK):,}-byte stack and a "
                         f"{board.get('heap_bytes', DEFAULT_HEAP):,}-byte heap reserve")
        int4 = ", int4 weights (--weight-bits 4)" if any(region == "FLASH" for region, _ in found) else ""
        need = {region: budget.get(region, 0) + int(n) for region, n in found}
        fits = fitting_parts(need.get("FLASH", 0), need.get("RAM", 0))
        return EdgeqError(f"the model does not fit {board['part'].split(' (')[0]} ({self.name}): " + "; ".join(parts),
                          f"{fits}; or use a smaller model or input{int4}")

    # ---- run ---------------------------------------------------------------------------------
    def _relink_with_vectors(self, out_dir: Path, info: dict, feeds, tag: str, profile: bool = False,
                             expected=None, scratch: Path | None = None) -> Path:
        """A firmware from the build's objects with other embedded inputs, linked with the
        emulated board's full memory (the vectors are a harness, not part of the model).
        Its files go to `scratch` (run and profile: a temporary folder, so a build, even a
        read-only one, is never written after compile), else into DIR (the build's own)."""
        board = info["board"]
        scratch = out_dir / "obj" if scratch is None else scratch
        work = scratch / tag
        work.mkdir(parents=True, exist_ok=True)
        cp.write_vectors(work, info["io"], feeds, expected)
        shutil.copy(out_dir / "src" / "model.h", work / "model.h")
        vectors_o = scratch / f"{tag}_vectors.o"
        self._compile(board, work / "vectors.c", vectors_o)
        self._linker_script(board, work / "link.ld", qemu_sizes=True)
        model: str | Path = "model"
        if profile:
            model = scratch / "model_prof.o"
            if not model.exists():
                self._compile(board, out_dir / "src" / "model.c", model, ("-DEDGEQ_PROFILE",))
        elf = (out_dir if scratch == out_dir / "obj" else scratch) / f"fw_{tag}.elf"
        self._link(board, out_dir, work / "link.ld", [model, "main", "startup", vectors_o], elf)
        return elf

    def run(self, out_dir: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out_dir = Path(out_dir)
        info = cp.load_info(out_dir, self.name)
        io = info["io"]
        samples = cp.to_samples(io, feeds)
        per_run = sum(t["bytes"] for t in io["inputs"])
        chunk = max(1, RUN_CHUNK_BYTES // max(per_run, 1))
        results, start, n = [], 0, len(samples[0])
        with tempfile.TemporaryDirectory(prefix="edgeq-run-") as scratch:
            while start < n:
                part = {t["name"]: s[start:start + chunk].reshape([-1] + t["shape"][1:])
                        for t, s in zip(io["inputs"], samples)}
                try:
                    results.append(self._run_chunk(out_dir, info, part, Path(scratch)))
                except EdgeqError as e:
                    # a model that nearly fills a board whose emulated flash is the part's
                    # own (the M55's ITCM) holds only a few inputs beside it: fewer per run
                    if "FLASH overflowed" not in str(e) or chunk == 1:
                        raise
                    chunk //= 2
                    continue
                start += chunk
        return {t["name"]: np.concatenate([r[t["name"]] for r in results]) for t in io["outputs"]}

    def _run_chunk(self, out_dir: Path, info: dict, part: dict, scratch: Path) -> dict:
        io = info["io"]
        elf = self._relink_with_vectors(out_dir, info, part, "run", scratch=scratch)
        runs = len(next(iter(part.values())))
        res = qemu.run_firmware(info["board"]["machine"], elf, timeout=QEMU_SECONDS[0] + QEMU_SECONDS[1] * runs)
        qemu.check_status(res, info["board"]["machine"], allow_mismatch=False)
        parsed = cp.parse_lines(res.stdout, io)
        if parsed["errors"] or parsed["runs"] * cp.batch_of(io) != runs:
            raise EdgeqError(f"the firmware reported errors {parsed['errors']} or too few outputs",
                             "this is an edgeq bug: please report it")
        return parsed["outputs"]

    # ---- profile -----------------------------------------------------------------------------
    def profile(self, out_dir: Path, device: str = "qemu") -> dict:
        if device.startswith("adb"):
            adb_missing(device)
        if device == "host":  # the same generated C, timed on this machine
            info = cp.load_info(out_dir, self.name)
            isa = info.get("kernels", {}).get("isa", ["portable"])
            if isa != ["portable"]:
                raise EdgeqError(f"this {self.name} build calls {'/'.join(isa).upper()} kernels, which do not run on "
                                 "this machine", "profile it with --device qemu, or compile the model with "
                                 "--target host to time the portable C here")
            return bench_sources_on_host(Path(out_dir), info["io"])
        if device != "qemu":
            raise EdgeqError(f"{self.name} firmware runs on QEMU (or a real board), not on {device!r}",
                             "use --device qemu (instructions) or --device host (wall time)")
        return profile_on_qemu(self, Path(out_dir))

    def flash(self, out_dir: Path, probe: str, dry_run: bool = False) -> dict:
        info = cp.load_info(out_dir, self.name)
        return flash_firmware(Path(out_dir) / "fw.elf", info["board"], probe, dry_run=dry_run)


TARGETS = [MCUTarget(name, board) for name, board in load_boards().items()]
