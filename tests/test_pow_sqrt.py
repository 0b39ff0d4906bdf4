"""Pow with a constant exponent, Sqrt, Reciprocal and division by an activation (issue 20).

Pow 2 imports as a Mul of the activation with itself, Pow 1 as an Identity, Pow 0.5 as
Sqrt; other exponents, Sqrt and the reciprocal (Reciprocal, or the right operand of a Div by
an activation, Pow -1) become lookup tables (QLut) after quantization, built from the
declared float64 semantics, so the C kernel and the TFLite GATHER of the table are the ones
every other table uses. Checked: import against onnxruntime, the tables against the
declaration, a torch model through `edgeq compile` for host and tflite with `edgeq run --check`.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.ir import QParams
from edgeq.importer.load import import_onnx
from edgeq.ops import FLOAT_OPS
from edgeq.quantization.rules.lut import lut_table

from ._cli_check import compile_and_check
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort


def _positive_model(op, exponent=None, divide=False):
    """y = op(x * x + 0.5): a positive operand, as the models that use these ops have."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Add", ["sq", "h"], ["p"])]
    inits = {"h": np.array(0.5, np.float32)}
    if divide:
        nodes.append(helper.make_node("Div", ["x", "p"], ["y"]))
    elif exponent is None:
        nodes.append(helper.make_node(op, ["p"], ["y"]))
    else:
        inits["e"] = np.array(exponent, np.float32)
        nodes.append(helper.make_node("Pow", ["p", "e"], ["y"]))
    return make_model(nodes, [("x", [1, 3, 4, 5])], [("y", None)], inits)


@pytest.mark.parametrize("op,exponent,divide,emits", [
    ("Pow", 2.0, False, "Mul"), ("Pow", 1.0, False, "Identity"), ("Pow", 0.5, False, "Sqrt"),
    ("Pow", 3.0, False, "Pow"), ("Pow", -1.5, False, "Pow"), ("Sqrt", None, False, "Sqrt"),
    ("Reciprocal", None, False, "Pow"), ("Div", None, True, "Pow"),
])
def test_import_matches_onnxruntime(op, exponent, divide, emits):
    m = _positive_model(op, exponent, divide)
    g = import_onnx(m)
    _canonical(g)
    assert g.nodes[-1].op == emits or any(n.op == emits for n in g.nodes), g.ops()
    _check_against_ort(m, g)


def test_tables_follow_the_declaration_on_every_input():
    """Negative inputs (NaN in ONNX) give 0 for Sqrt and fractional powers; 0 ** -1 is +inf,
    which the table clamps to the largest int8; an integer exponent keeps the sign."""
    qx, qy = QParams(0.05, 0), QParams(0.1, -128)
    x = np.arange(-128, 128) * 0.05
    sqrt = lut_table(lambda v: FLOAT_OPS["Sqrt"].float_fn(v, {}), qx, qy)
    assert np.all(sqrt[:128] == -128) and np.array_equal(sqrt[128:], qy.quantize(np.sqrt(x[128:])))
    recip = lut_table(lambda v: FLOAT_OPS["Pow"].float_fn(v, {"exponent": -1.0}), qx, QParams(0.1, 0))
    assert recip[128] == 127 and recip[127] == -128 and recip[-1] == round(1 / (127 * 0.05) / 0.1)
    cube = lut_table(lambda v: FLOAT_OPS["Pow"].float_fn(v, {"exponent": 3.0}), qx, QParams(3.0, 0))
    k = np.arange(1, 128)
    assert np.array_equal(cube[128 + k], -cube[128 - k]) and cube[0] < 0 < cube[-1]  # odd: x**3 keeps the sign


@pytest.mark.parametrize("target", ["host", "tflite"])
def test_pow_net_compiles_and_runs_bit_exact(target, tmp_path):
    path, shape = exported("pow", "legacy")
    compile_and_check(path, shape, target, tmp_path, seed=6)


def test_float_graph_file_runs_in_onnxruntime():
    """model.float.onnx writes Pow's exponent back as ONNX's second input."""
    from edgeq.floatexec.executor import run_float
    from edgeq.graphio.onnx_io import graph_to_onnx, load_graph, save_graph
    from ._onnx_builders import ort_run
    g = import_onnx(_positive_model("Pow", 1.5))
    x = np.random.default_rng(3).standard_normal((1, 3, 4, 5)).astype(np.float32)
    want = run_float(g, {"x": x})["y"]
    np.testing.assert_allclose(ort_run(graph_to_onnx(g), {"x": x})[0], want, rtol=1e-5, atol=1e-6)
