"""Run cases as `edgeq compile CASE.onnx -o DIR` in long-lived worker processes.

Each worker imports edgeq once, caps its address space (a case that tries to allocate
gigabytes fails there instead of taking the machine) and runs one case at a time
in-process through `edgeq.cli.main`, with file descriptors 1 and 2 sent to files so
everything the user would see is captured (Python and C writes alike). The parent gives
each case a deadline: a worker that misses it is killed (a hang) and replaced; a worker
that dies is a crash. Workers start with `spawn`, so no case inherits the parent's state.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterator

ADDRESS_SPACE_HEADROOM = 2 << 30   # beyond what the imports use: a case that needs more fails
PEAK_RSS_LIMIT = 1 << 30           # a case whose worker peaked above this used too much memory


@dataclass
class Outcome:
    status: str                 # "done" | "hang" | "died"
    rc: int | None = None       # the CLI's exit status (done)
    traceback: str = ""         # an exception that escaped edgeq.cli.main
    exception: str = ""         # its first cause in one line: "Type: message (file:line)"
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    peak_rss: int = 0           # bytes, the worker's peak after this case
    exitcode: int | None = None  # died: the worker's exit code (negative: the signal)


# ---- the worker --------------------------------------------------------------------------

def _worker(conn, scratch: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: the machine is shared
    import resource
    import edgeq.cli
    import torch
    from edgeq.driver import pipeline  # noqa: F401 - import cost paid once, not by the first case
    torch.set_num_threads(1)
    vm = _vm_size()
    if vm:
        resource.setrlimit(resource.RLIMIT_AS, (vm + ADDRESS_SPACE_HEADROOM, vm + ADDRESS_SPACE_HEADROOM))
    conn.send("ready")
    while True:
        argv = conn.recv()
        if argv is None:
            return
        conn.send(_run_case(edgeq.cli.main, argv, Path(scratch)))


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run_case(main: Callable, argv: list[str], scratch: Path) -> Outcome:
    import resource
    import sys
    import warnings
    out_path, err_path = scratch / "stdout.txt", scratch / "stderr.txt"
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    rc, tb, first = None, "", ""
    t0 = time.monotonic()
    # catch_warnings() forgets which warnings were shown: each case warns as a fresh process would
    with open(out_path, "wb") as fo, open(err_path, "wb") as fe, warnings.catch_warnings():
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        try:
            main(argv)
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001 - exactly what the fuzzer looks for
            tb, first = traceback.format_exc(), _first_cause(e)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return Outcome("done", rc, tb, first, out_path.read_text(errors="replace"),
                   err_path.read_text(errors="replace"), time.monotonic() - t0, peak)


def _first_cause(e: BaseException) -> str:
    """The exception that started it (an error handler may have raised another on top)."""
    while e.__context__ is not None:
        e = e.__context__
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}{at}"


# ---- the pool ------------------------------------------------------------------------------

class _Slot:
    def __init__(self, ctx, scratch: Path):
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        parent, child = ctx.Pipe()
        self.conn = parent
        self.proc = ctx.Process(target=_worker, args=(child, str(scratch)), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.job = None          # (key, deadline)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.conn.close()


def run_pool(jobs: Iterator[tuple[object, list[str], float]], workers: int, scratch: Path,
             on_result: Callable[[object, Outcome], None]) -> None:
    """Run (key, argv, timeout) jobs on `workers` processes; on_result(key, outcome) for each."""
    ctx = mp.get_context("spawn")
    slots = [_Slot(ctx, scratch / f"worker{k}") for k in range(workers)]
    pending = iter(jobs)
    exhausted = False
    try:
        while True:
            for k, s in enumerate(slots):
                if s.ready and s.job is None and not exhausted:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                        break
                    key, argv, timeout = job
                    s.conn.send(argv)
                    s.job = (key, time.monotonic() + timeout)
            busy = [s for s in slots if s.job is not None or not s.ready]
            if exhausted and not any(s.job is not None for s in slots):
                return
            ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.5)
            for k, s in enumerate(slots):
                if s.conn in ready or s.proc.sentinel in ready:
                    msg = _recv(s)
                    if msg == "ready":
                        s.ready = True
                    elif isinstance(msg, Outcome):
                        key, s.job = s.job[0], None
                        on_result(key, msg)
                        if msg.peak_rss > PEAK_RSS_LIMIT:  # start afresh: the peak never goes down
                            slots[k] = _restart(ctx, s)
                    else:  # the worker died
                        if s.job is not None:
                            on_result(s.job[0], Outcome("died", exitcode=s.proc.exitcode))
                        elif not s.ready:
                            raise RuntimeError(f"fuzz worker failed to start (exit {s.proc.exitcode})")
                        slots[k] = _restart(ctx, s)
                elif s.job is not None and time.monotonic() > s.job[1]:
                    on_result(s.job[0], Outcome("hang"))
                    slots[k] = _restart(ctx, s)
    finally:
        for s in slots:
            if s.proc.is_alive():
                try:
                    s.conn.send(None)
                except OSError:
                    pass
            s.proc.join(5)
            s.kill()


def _recv(slot: _Slot):
    try:
        if slot.conn.poll():
            return slot.conn.recv()
    except (EOFError, OSError):
        pass
    slot.proc.join(5)
    return None


def _restart(ctx, slot: _Slot) -> _Slot:
    slot.kill()
    return _Slot(ctx, slot.scratch)
