"""The ONNX mutation fuzzer (tests/fuzz) in the default run: every seed model builds, and
300 fixed-seed cases end as a clear one-line error or a valid build: no traceback, crash,
hang, leftover file or unclear message (scripts/fuzz_onnx.py runs 10,000; docs/safety.md)."""
from __future__ import annotations

import pytest

from edgeq.errors import EdgeqError
from tests.fuzz.case import Case
from tests.fuzz.classify import classify, error_line
from tests.fuzz.harness import Outcome
from tests.fuzz.mutations import generate_case
from tests.fuzz.run import run_fuzz, table
from tests.fuzz.seeds import seed_models

SMOKE_CASES = 300


@pytest.mark.parametrize("name", sorted(seed_models("repo")))
def test_seed_model_builds(name):
    """A seed that did not build would only ever test error paths."""
    from edgeq.driver.pipeline import CompileOptions, compile_model
    compile_model(seed_models("repo")[name], CompileOptions(progress=False), log=lambda _: None)


def test_fuzz_smoke(tmp_path):
    s = run_fuzz(SMOKE_CASES, seed=0, workers=2, seeds="repo", host_every=10, save_dir=tmp_path, log=None)
    report = table(s) + "".join(f"\ncase {i} [{k}] {c}: {r}" for i, k, c, r in s.failures)
    assert s.ok, report
    # the fuzzer reaches both ends, or it tests nothing
    assert s.total("clear error") > 100 and s.total("valid build") > 30, report
    print(f"\n{SMOKE_CASES} cases in {s.seconds:.0f} s\n{table(s)}")


def test_cases_are_reproducible():
    seeds = seed_models("small")
    a, b = generate_case(seeds, 7, 123), generate_case(seeds, 7, 123)
    assert a.model_bytes() == b.model_bytes() and a.notes == b.notes


# ---- the classifier itself: what counts as one clear line ---------------------------------

@pytest.mark.parametrize("stderr,ok", [
    ("error: model is bad (fix: re-export it)\n", True),
    ("note: no --calib data\n  more note\nerror: bad (fix: x)\n", True),
    ("error: bad\n", False),                                          # no fix
    ("error: bad (fix: x)\nsecond line\n", False),                    # not the last line
    ("warning: numpy overflow\nerror: bad (fix: x)\n", False),        # stray output
    ("Traceback (most recent call last):\n  ...\nValueError: x\n", False),
])
def test_error_line(stderr, ok):
    assert (error_line(stderr)[0] is not None) == ok


def test_classify_flags_half_written_output_and_escapes(tmp_path):
    import onnx
    case = Case(0, "seed", onnx.ModelProto())
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "case.onnx").write_bytes(b"")
    err = Outcome("done", rc=1, stderr="error: bad (fix: x)\n")
    assert classify(case, tmp_path, err) == ("clear error", "")
    (tmp_path / ".out.tmp123").mkdir()
    assert classify(case, tmp_path, err)[0] == "other"
    (tmp_path / ".out.tmp123").rmdir()
    out = tmp_path / "out"
    out.mkdir()
    for f in ("report.json", "model.float.onnx", "model.q.onnx"):
        (out / f).write_text("")
    assert classify(case, tmp_path, Outcome("done", rc=0)) == ("valid build", "")
    case.expect = "reject"
    assert classify(case, tmp_path, Outcome("done", rc=0))[0] == "other"
    assert classify(case, tmp_path, Outcome("done", rc=None, traceback="x", exception="E"))[0] == "crash"
    assert classify(case, tmp_path, Outcome("hang"))[0] == "hang"
    assert classify(case, tmp_path, Outcome("died", exitcode=-11)) == ("crash", "worker died (signal 11)")


def test_edgeq_error_is_one_line():
    e = EdgeqError("node 'a\nb\x1b[2J\u202e' is bad", "fix\rit")
    assert "\n" not in str(e) and "\r" not in str(e) and "\x1b" not in str(e) and "\u202e" not in str(e)
