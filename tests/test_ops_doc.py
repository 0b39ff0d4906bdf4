"""docs/ops.md is what scripts/ops_table.py writes from the registries today: an op added
to a stage, or a peer's version change, shows up as a failing test until it is regenerated."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def test_ops_doc_is_current():
    pytest.importorskip("onnxruntime")
    import ops_table
    assert (REPO / "docs" / "ops.md").read_text() == ops_table.render(), \
        "docs/ops.md is stale: run python scripts/ops_table.py"


def test_every_imported_onnx_op_has_a_row():
    import ops_table
    from edgeq.ops import REGISTRY
    ops_table.load_stages()
    text = (REPO / "docs" / "ops.md").read_text()
    for op in REGISTRY.implemented("import"):
        assert f"\n| {op} |" in text, op
