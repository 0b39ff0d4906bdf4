"""MatMul of two activations (issue 20): canonical MatMul, QMatMul with TFLite BATCH_MATMUL's
integer semantics (docs/semantics.md). A constant 2-D right operand stays a Gemm. Checked:
import against onnxruntime, the C kernel against the reference (batch broadcasting, extreme
zero points and multipliers), the TFLite export against LiteRT BUILTIN_REF and TFLite Micro,
a self-attention net through `edgeq compile` with `edgeq run --check`."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeq.errors import EdgeqError
from edgeq.reference import run_node
from edgeq.importer.load import import_onnx

from ._cli_check import compile_and_check
from . import _cbuild as cb
from ._ckernels import M_EXTREMES, node, rand_i8
from ._onnx_builders import exported, make_model
from .test_import import _canonical, _check_against_ort


@pytest.mark.parametrize("a_shape,b_shape,b_const", [
    ((1, 5, 7), (1, 7, 3), False),
    ((1, 2, 5, 7), (1, 2, 7, 4), False),
    ((1, 2, 5, 7), (1, 1, 7, 4), True),     # a constant batch of one matrix, broadcast
    ((1, 5, 7), (7, 3), False),             # a 2-D activation on the right
])
def test_import_matches_onnxruntime(a_shape, b_shape, b_const):
    inits = {"b": np.random.default_rng(0).standard_normal(b_shape).astype(np.float32)} if b_const else {}
    inputs = [("a", list(a_shape))] + ([] if b_const else [("b", list(b_shape))])
    m = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, [("y", None)], inits)
    if len(b_shape) == 2 and not b_const:
        with pytest.raises(EdgeqError, match="batch"):  # b's axis 0 is not a batch of 1
            import_onnx(m)
        return
    g = import_onnx(m)
    _canonical(g)
    assert g.ops() == ["MatMul"]
    _check_against_ort(m, g)


def test_constant_left_operand_is_refused():
    m = make_model([helper.make_node("MatMul", ["a", "x"], ["y"])], [("x", [1, 3, 4])], [("y", None)],
                   {"a": np.ones((1, 2, 3), np.float32)})
    with pytest.raises(EdgeqError, match="constant left operand"):
        import_onnx(m)


def _qnode(rng):
    mult = int(rng.integers(1 << 30, (1 << 31) - 1))
    return node("QMatMul", a_zp=int(rng.integers(-128, 128)), b_zp=int(rng.integers(-128, 128)),
                y_zp=int(rng.integers(-128, 128)), y_mult=mult, y_shift=int(rng.integers(-20, -8)),
                act_min=-128, act_max=127)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((1, 5, 7), (1, 7, 3)), ((2, 3, 4, 9), (2, 3, 9, 5)), ((1, 3, 4, 9), (1, 1, 9, 5)),
    ((1, 1, 4, 9), (1, 3, 9, 5)), ((1, 1, 40), (1, 40, 1)),
])
def test_c_equals_reference(a_shape, b_shape):
    rng = np.random.default_rng(sum(a_shape) + sum(b_shape))
    for trial in range(4):
        n = _qnode(rng)
        if trial == 3:
            n.attrs.update(y_mult=M_EXTREMES[1], a_zp=-128, b_zp=127)
        a, b = rand_i8(rng, a_shape), rand_i8(rng, b_shape)
        want = run_node(n, [a, b])
        batch = int(np.prod(want.shape[:-2]))
        m_, k_, n_ = a_shape[-2], a_shape[-1], b_shape[-1]
        stride = lambda s, size: size if int(np.prod(s[:-2])) == batch else 0  # noqa: E731
        p = cb.make(cb.MatmulParams, batch=batch, m=m_, k=k_, n=n_, a_batch_stride=stride(a_shape, m_ * k_),
                    b_batch_stride=stride(b_shape, k_ * n_), **{k: n.attrs[k] for k in (
                        "a_zp", "b_zp", "y_zp", "y_mult", "y_shift", "act_min", "act_max")})
        got = np.zeros(want.shape, np.int8)
        assert cb.call("eq_matmul_s8", p, cb.i8(a), cb.i8(b), got) == 0
        assert np.array_equal(got, want), trial


def test_exports_as_exact_batch_matmul():
    from edgeq.quantization.rules.multipliers import mul_multiplier
    from .test_tflite_export import QB, assert_exact, op_codes
    b = QB(41)
    x = b.inp("x", (1, 2, 5, 6), 0.05, 3)
    w = b.inp("w", (1, 2, 6, 4), 0.04, -5)
    ys = b._out((1, 2, 5, 4), 0.3, 2)
    mult, shift = mul_multiplier(b.q(x).scale, b.q(w).scale, np.float32(0.3))
    y = b._node("QMatMul", [x, w], ys, a_zp=3, b_zp=-5, y_zp=2, y_mult=mult, y_shift=shift)
    data = assert_exact(b.done(y))
    assert op_codes(data).count("BATCH_MATMUL") == 1  # (rank-4 inputs come in NHWC: TRANSPOSEs first)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_attention_matches_onnxruntime(exporter):
    path, _ = exported("attention", exporter)
    g = import_onnx(path)
    assert g.ops().count("MatMul") == 2
    _check_against_ort(str(path), g)


@pytest.mark.parametrize("target", ["host", "tflite"])
def test_attention_compiles_and_runs_bit_exact(target, tmp_path):
    path, shape = exported("attention", "legacy")
    compile_and_check(path, shape, target, tmp_path, seed=10)
