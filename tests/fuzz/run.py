"""Generate, run, classify and report N cases; keep a reproducer of every failure."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from tests.fuzz.case import MODEL_DIR, MODEL_FILE, Case
from tests.fuzz.classify import CLASSES, FAILURES, classify
from tests.fuzz.harness import Outcome, run_pool
from tests.fuzz.mutate_files import CASE_DIR_TOKEN
from tests.fuzz.mutations import generate_case, kinds
from tests.fuzz.seeds import seed_models

TIMEOUT_S = {"reference": 60.0, "host": 120.0}


@dataclass
class Summary:
    cases: int
    seed: int
    seeds: list[str]
    seconds: float = 0.0
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # kind -> class -> n
    failures: list[tuple[int, str, str, str]] = field(default_factory=list)  # index, kind, class, reason
    host_cases: int = 0

    def total(self, cls: str) -> int:
        return sum(c[cls] for c in self.counts.values())

    @property
    def ok(self) -> bool:
        return not any(self.total(c) for c in FAILURES)


def write_case(case: Case, case_dir: Path) -> list[str]:
    """The case's files on disk; returns the `edgeq compile` arguments."""
    model_dir = case_dir / MODEL_DIR
    model_dir.mkdir(parents=True)
    data = case.model_bytes()
    if CASE_DIR_TOKEN.encode() in data and case.raw is None:
        m = onnx.ModelProto()
        m.CopyFrom(case.model)
        for t in m.graph.initializer:
            for e in t.external_data:
                e.value = e.value.replace(CASE_DIR_TOKEN, str(case_dir))
        data = m.SerializeToString()
    (model_dir / MODEL_FILE).write_bytes(data)
    for rel, blob in case.files.items():
        (model_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / rel).write_bytes(blob)
    for name, blob in case.outside.items():
        (case_dir / name).write_bytes(blob)
    for name, target in case.symlinks.items():
        os.symlink(target, model_dir / name)
    return ["compile", str(model_dir / MODEL_FILE), "--target", case.target, "-o", str(case_dir / "out"), "-q"]


def save_reproducer(case: Case, case_dir: Path, o: Outcome, cls: str, reason: str, dest: Path) -> Path:
    d = dest / f"{cls.replace(' ', '_')}-{case.index:05d}-{case.kind}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copytree(case_dir / MODEL_DIR, d / MODEL_DIR, symlinks=True)
    for name in case.outside:
        shutil.copy2(case_dir / name, d / name)
    (d / "case.txt").write_text(
        f"case {case.index} of the seeded run; seed model {case.seed_name}; kind {case.kind}; "
        f"target {case.target}; expect {case.expect or 'either'}\n"
        f"class: {cls}: {reason}\n"
        + "".join(f"mutation: {n}\n" for n in case.notes)
        + f"command (from this folder): edgeq compile {MODEL_DIR}/{MODEL_FILE} --target {case.target} -o out -q\n"
        + f"exit status: {o.rc if o.status == 'done' else o.status}\n", errors="backslashreplace")
    (d / "stderr.txt").write_text(o.stderr, errors="backslashreplace")
    if o.traceback:
        (d / "traceback.txt").write_text(o.traceback, errors="backslashreplace")
    return d


def run_fuzz(cases: int, seed: int = 0, workers: int = 2, seeds: str = "all", host_every: int = 10,
             save_dir: Path | None = None, first: int = 0, log=print, indices: list[int] | None = None,
             save_valid: bool = False) -> Summary:
    """Cases first .. first+cases-1 of `seed` (or exactly `indices`). Failing cases (and
    with `save_valid` the valid builds too) are saved to `save_dir`."""
    models = seed_models(seeds)
    indices = list(range(first, first + cases)) if indices is None else list(indices)
    cases = len(indices)
    summary = Summary(cases, seed, sorted(models))
    work = Path(tempfile.mkdtemp(prefix="edgeq-fuzz-"))
    live: dict[int, tuple[Case, Path]] = {}
    t0 = time.monotonic()

    def jobs():
        for i in indices:
            case = generate_case(models, seed, i, host_every)
            case_dir = work / f"case{i:05d}"
            argv = write_case(case, case_dir)
            live[i] = (case, case_dir)
            summary.host_cases += case.target == "host"
            yield i, argv, TIMEOUT_S[case.target]

    def on_result(i: int, o: Outcome) -> None:
        case, case_dir = live.pop(i)
        cls, reason = classify(case, case_dir, o)
        summary.counts[case.kind][cls] += 1
        if cls in FAILURES:
            summary.failures.append((i, case.kind, cls, reason))
        if save_dir is not None and (cls in FAILURES or (save_valid and cls == "valid build")):
            save_reproducer(case, case_dir, o, cls, reason, save_dir)
        shutil.rmtree(case_dir, ignore_errors=True)
        done = sum(sum(c.values()) for c in summary.counts.values())
        if log and done % 500 == 0:
            log(f"  {done}/{cases} cases, {time.monotonic() - t0:.0f} s")

    try:
        run_pool(jobs(), workers, work / "workers", on_result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.monotonic() - t0
    return summary


def table(summary: Summary) -> str:
    """A Markdown table: cases per mutation kind and class, and the totals."""
    head = ["mutation kind", "cases"] + CLASSES
    rows = []
    for kind in kinds():
        c = summary.counts.get(kind, Counter())
        if sum(c.values()):
            rows.append([kind, str(sum(c.values()))] + [str(c[k]) for k in CLASSES])
    tot = [sum(sum(c.values()) for c in summary.counts.values())]
    rows.append(["**total**", str(tot[0])] + [str(summary.total(k)) for k in CLASSES])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                 enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])
