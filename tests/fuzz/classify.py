"""What one case's outcome means for a user.

- clear error: exit 1, stderr is (notes, then) exactly one `error: <cause> (fix: <fix>)`
  line, no DIR and nothing else left next to it, the model's folder untouched;
- valid build: exit 0 and a complete DIR, nothing else left behind;
- crash: the worker died (a signal), or an exception escaped the CLI (a traceback);
- hang: the case missed its deadline;
- other: anything else, e.g. an error that is not one line naming a fix, a half-written
  DIR, a leftover temporary folder, too much memory, a rejected model whose meaning the
  mutation kept, or a build that read data from outside the model's folder.
"""
from __future__ import annotations

from pathlib import Path

from tests.fuzz.case import Case
from tests.fuzz.harness import PEAK_RSS_LIMIT, Outcome

CLASSES = ["clear error", "valid build", "crash", "hang", "other"]
FAILURES = ("crash", "hang", "other")
BUILD_FILES = {"reference": ["report.json", "model.float.onnx", "model.q.onnx"],
               "host": ["report.json", "model.float.onnx", "model.q.onnx", "model_host"]}


def error_line(stderr: str) -> tuple[str | None, str]:
    """(the one error line, "") or (None, why stderr is not one clear error line)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if not errors:
        return None, "no 'error:' line" + (f" (stderr: {lines[-1][:120]!r})" if lines else " (stderr empty)")
    if len(errors) > 1 or errors[0] != len(lines) - 1:
        return None, f"the error is not one last line ({len(lines) - errors[0]} lines from the first 'error:')"
    before = lines[:errors[0]]
    if before and not before[0].startswith("note:"):
        return None, f"stray output before the error: {before[0][:120]!r}"
    line = lines[-1]
    if "(fix: " not in line or not line.rstrip().endswith(")"):
        return None, f"error line names no fix: {line[:160]!r}"
    return line, ""


def _leftovers(case: Case, case_dir: Path, built: bool) -> str:
    expected = {"model", *case.outside} | ({"out"} if built else set())
    extra = sorted(p.name for p in case_dir.iterdir() if p.name not in expected)
    if extra:
        return f"left behind next to DIR: {extra[:3]}"
    model_dir = case_dir / "model"
    wrote = {"case.onnx", *(f.split("/")[0] for f in case.files), *case.symlinks}
    extra = sorted(p.name for p in model_dir.iterdir() if p.name not in wrote)
    return f"wrote into the model's folder: {extra[:3]}" if extra else ""


def classify(case: Case, case_dir: Path, o: Outcome) -> tuple[str, str]:
    """(class, reason): the reason is one line for the report ("" for the expected)."""
    if o.status == "hang":
        return "hang", "missed the deadline"
    if o.status == "died":
        code = o.exitcode
        return "crash", f"worker died ({'signal ' + str(-code) if code is not None and code < 0 else code})"
    if o.traceback:
        return "crash", f"traceback: {o.exception}"
    if "Traceback (most recent call last)" in o.stderr:
        last = [line for line in o.stderr.strip().splitlines() if line.strip()][-1]
        return "crash", f"traceback on stderr: {last[:200]}"
    if o.peak_rss > PEAK_RSS_LIMIT:
        return "other", f"peak memory {o.peak_rss >> 20} MiB"
    out = case_dir / "out"
    if o.rc == 0:
        missing = [f for f in BUILD_FILES[case.target] if not (out / f).is_file()]
        if missing:
            return "other", f"exit 0 but DIR lacks {missing}"
        if case.expect == "reject":
            return "other", "built from data outside the model's folder"
        left = _leftovers(case, case_dir, built=True)
        return ("other", left) if left else ("valid build", "")
    if o.rc != 1:
        return "other", f"exit status {o.rc}"
    line, why = error_line(o.stderr)
    if line is None:
        return "other", why
    if out.exists():
        return "other", "failed but DIR exists"
    left = _leftovers(case, case_dir, built=False)
    if left:
        return "other", left
    if case.expect == "valid":
        return "other", f"rejected a model whose meaning the mutation kept: {line[:200]}"
    return "clear error", ""
