"""The README's MLPerf Tiny claims, as tests that can fail, in the default run.

- Fidelity (docs/fidelity.md, `python benchmarks/mlperf_fidelity.py`): on every model
  edgeq's int8 output is at least as close to float as the better of the official MLPerf
  int8 TFLite model (LiteRT reference kernels) and onnxruntime's QDQ, by output SQNR and,
  for classifiers, top-1 agreement. The benchmark's own `evaluate`, with the
  --calib-percentile its held-out pick chose for the model (mlperf_common.HELD_OUT_PICKS;
  the slow test re-runs the pick), on fewer evaluation crops for the photo models
  (N_EVAL_FAST of the benchmark's 512) and on every sample of the others (37, 98, 24).
- Arena (README's Cortex-M table, `python benchmarks/mlperf_mcu.py`): edgeq's smallest
  arena (`--scratch fit` for cortex-m7, its channels-last DSP kernels) is at most TFLite
  Micro's head (planned activations + scratch) for the official int8 .tflite and for
  edgeq's own export of the model.
Each model is skipped when ../shared/models/mlperf-tiny is absent.
"""
from __future__ import annotations

import sys

import pytest

from .conftest import MLPERF_MODELS, REPO, mlperf_model

sys.path.insert(0, str(REPO / "benchmarks"))
from mlperf_common import CLASSIFIERS, HELD_OUT_PICKS  # noqa: E402

N_EVAL_FAST = 96  # photo crops per image model (the benchmark: 512)
PEERS = ("tflite (official int8)", "onnxruntime QDQ")


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_fidelity_at_least_the_better_peer(name):
    pytest.importorskip("ai_edge_litert.interpreter")
    from mlperf_fidelity import evaluate
    mlperf_model(name)
    row = evaluate(name, "per-channel", "disjoint", N_EVAL_FAST, HELD_OUT_PICKS[name], "recorded pick")
    for what in ("sqnr",) + (("top1",) if name in CLASSIFIERS else ()):
        best = max(row[f"{p} {what}"] for p in PEERS)
        assert row[f"edgeq {what}"] >= best, (what, {k: v for k, v in row.items() if k != "paired"})


@pytest.mark.slow
@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_recorded_percentile_is_the_held_out_pick(name):
    from mlperf_dev import pick_percentile
    mlperf_model(name)
    assert pick_percentile(name)[0] == HELD_OUT_PICKS[name]


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_arena_at_most_tflm_head(name):
    pytest.importorskip("tflite_micro")
    from edgeq.codegen import plan_build
    from edgeq.codegen.kernels import choice_for_cpu
    from edgeq.export.tflite import export_tflite
    from edgeq.export.tflite_run import tflm_allocations

    from .test_mcu import _real_model
    official = mlperf_model(name).parent / "reference_int8.tflite"
    g, _ = _real_model("mlperf", name)
    ours = plan_build(g, choice_for_cpu("cortex-m7"), "fit").plan.arena_bytes  # --scratch fit
    heads = {"official int8": tflm_allocations(official)["head"],
             "edgeq's export": tflm_allocations(export_tflite(g))["head"]}
    assert all(ours <= h for h in heads.values()), (ours, heads)
