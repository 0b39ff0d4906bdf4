"""The end-to-end check the op tests share: compile a model with the CLI, run random float
inputs through the build with `edgeq run --check` (bit-identical to the integer reference)."""
from __future__ import annotations

import numpy as np

from .test_cli_usage import edgeq_cli


def compile_and_check(model, shape, target: str, tmp_path, seed: int, n: int = 3, flags=()) -> None:
    out = tmp_path / target
    proc = edgeq_cli("compile", model, "-t", target, "-o", out, "-q", *flags)
    assert proc.returncode == 0, proc.stderr
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(seed).normal(size=(n,) + tuple(shape[1:])).astype(np.float32))
    run = edgeq_cli("run", out, "--input", x, "--check")
    assert run.returncode == 0 and "bit-identical" in run.stdout + run.stderr, run.stdout + run.stderr
