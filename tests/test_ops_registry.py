"""The op registry (edgeq/ops): every implementation a declaration promises exists, lookups
fail as one EdgeqError naming op, node, stage and fix, and the README shows `edgeq ops`.

The completeness test names every missing implementation at once (stage, op, and the
package that should register it), so an op added to the declarations without its
reference kernel, C emitter, quantization rule, TFLite converter ... fails here, not deep
in a user's compile. Known gaps are edgeq.ops.table.GAPS, each with its reason.
"""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from edgeq.driver import ops_table
from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node, Tensor
from edgeq.ops import REGISTRY, implements, lookup
from edgeq.ops import table as T
from tests.conftest import REPO

ops_table.load_stages()


def test_every_promised_implementation_is_registered():
    missing = T.missing()
    assert not missing, "missing implementations:\n" + "\n".join(missing)


def test_gaps_are_real_gaps():
    """A GAPS entry whose implementation now exists is stale: remove it."""
    stale = [(s, op) for s, op in T.GAPS if REGISTRY.implementations(s, op)]
    assert not stale, stale


def test_every_expected_stage_is_importable():
    absent = ops_table.load_stages()
    expected = [s for s in absent if REGISTRY.stage(s).expected]
    assert not expected, absent


@pytest.mark.parametrize("stage, op", [("reference", "QFoo"), ("c", "QFoo"), ("tflite", "QFoo"),
                                       ("quantize", "Foo"), ("float", "Foo")])
def test_lookup_names_op_node_stage_and_fix(stage, op):
    with pytest.raises(EdgeqError) as e:
        lookup(stage, op, "layer7")
    st = REGISTRY.stage(stage)
    assert op in e.value.cause and "'layer7'" in e.value.cause and st.what in e.value.cause
    assert e.value.fix == st.fix


def test_quantizing_an_op_without_a_rule_names_the_node():
    from edgeq.quantization.quantize import quantize
    g = Graph("g")
    g.add_tensor(Tensor("x", (1, 3, 4, 4), "float32"))
    g.add_tensor(Tensor("y", (1, 3, 4, 4), "float32"))
    for n in ("s", "b", "m", "v"):
        g.add_tensor(Tensor(n, (3,), "float32", data=np.ones(3, np.float32)))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes.append(Node("BatchNormalization", "bn1", ["x", "s", "b", "m", "v"], ["y"], {"epsilon": 1e-5}))
    with pytest.raises(EdgeqError, match=r"no quantization rule for op BatchNormalization \(node 'bn1'\)"):
        quantize(g, {"x": (-1.0, 1.0), "y": (-1.0, 1.0)})


def test_registering_an_undeclared_op_fails_at_import():
    with pytest.raises(ValueError, match="undeclared integer ops"):
        implements("reference", "QNotDeclared")(lambda node, x: x)
    with pytest.raises(ValueError, match="undeclared integer ops"):
        implements("quantize", "Relu", emits=("QNotDeclared",))(lambda ctx, node: None)


def test_npu_support_is_derived_from_the_tflite_builtins():
    from edgeq.export.tflite import NPU_BUILTINS
    for op, (impl,) in REGISTRY.implemented("tflite").items():
        on_npu = bool(REGISTRY.implementations("npu", op))
        assert on_npu == (impl.meta["builtins"][0] in NPU_BUILTINS), op
    assert REGISTRY.implementations("npu", "QConv") and not REGISTRY.implementations("npu", "QPrelu")


def test_readme_shows_edgeq_ops():
    """README's "Supported ops" section is `edgeq ops --markdown`, verbatim."""
    out = subprocess.run([sys.executable, "-m", "edgeq.cli", "ops", "--markdown"], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    readme = (REPO / "README.md").read_text()
    m = re.search(r"<!-- edgeq ops --markdown -->\n(.*?)<!-- end edgeq ops -->", readme, re.S)
    assert m, "README.md has no `edgeq ops --markdown` block"
    assert m.group(1) == out, "README's op table is stale: paste `edgeq ops --markdown` into it"


def test_ops_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "edgeq.cli", "ops"], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert "QSoftmax" in out and "eq_softmax_s8" in out and "SOFTMAX" in out
