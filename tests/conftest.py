"""Shared fixtures: where the repository and ../shared live, and skip rules for them."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MLPERF = SHARED / "models" / "mlperf-tiny"
MLPERF_MODELS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]


@pytest.fixture
def mlperf_dir():
    if not MLPERF.is_dir():
        pytest.skip("../shared/models/mlperf-tiny is absent")
    return MLPERF


def mlperf_model(name: str) -> Path:
    """Path of an MLPerf Tiny float ONNX model; skips the test when ../shared is absent."""
    path = MLPERF / name / "model.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path
