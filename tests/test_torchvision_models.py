"""torchvision classifiers as users export them (benchmarks/torchvision_models.py): both
exporters, a dynamic batch axis, compiled for reference and host, outputs equal.

The slow tests compile every architecture with no extra flags (the dynamic batch axis
becomes 1) and check host against the reference. The blocker names are unit-tested by
default.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PASSING = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x0_5", "squeezenet1_1",
           "mnasnet0_5", "efficientnet_b0", "regnet_x_400mf", "resnet18"]


def test_blockers_name_the_missing_work():
    from torchvision_models import blocker
    assert blocker("input 'x' has a dynamic or unknown shape [?x3x224x224] (fix: ...)") == "dynamic batch axis (s20a)"
    assert blocker("unsupported op Slice in node '/features/Slice'") == "op Slice (s20b)"
    assert blocker("Conv node 'c': requantization multiplier 1 > 1 would overflow the int32 "
                   "accumulator when shifted") == "per-channel overflow / left shift (s20a)"
    assert blocker("something new").startswith("other: something new")


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", PASSING)
def test_torchvision_model_compiles_and_host_equals_reference(name, exporter, tmp_path):
    pytest.importorskip("onnxscript")
    from edgeq.errors import EdgeqError
    from edgeq.models import torchvision_zoo
    try:
        torchvision_zoo.load_torchvision()
    except EdgeqError as e:
        pytest.skip(str(e))
    from torchvision_models import check
    row = check(name, exporter, tmp_path, n_inputs=2, size=224)
    assert row["plain"] == "ok", row      # no --input-shape: the dynamic batch axis becomes 1
    assert row.get("host") == "ok", row
    assert row["bit_exact"] is True, row
