"""The int16 recurrent state (issue 20): QGatedState / QNarrow16 (docs/semantics.md).

Checked: the C kernels equal the integer reference bit for bit on random data and on the
extremes (full int16 state, tables at their limits, multipliers 2^30 and 2^31 - 1, shifts
-31..0, int16 saturation, all 65,536 inputs of QNarrow16); the reference computes the
update it documents; the quantized cell carries int16 tensors (2 bytes each in the memory
plan) and int8 copies; the int8 path (expand_gated_state) is the same float function;
the TFLite targets refuse an int16 state in one line; cortex-m and arm64 builds are
bit-exact with the reference; and on a long sequence the int16 state is closer to
onnxruntime's float outputs than the int8 one.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.ir import Node
from edgeq.reference import run_node

from . import _cbuild as cb
from ._cli_check import compile_and_check
from ._ckernels import M_EXTREMES
from ._onnx_builders import exported
from .test_cli_usage import edgeq_cli

GatedParams = cb._struct("eq_gated_state_params", ["size", "s_mult", "s_shift", "u_mult", "u_shift"])
NarrowParams = cb._struct("eq_narrow_params", ["size", "y_zp", "mult", "shift"])


def _node(op, **attrs):
    return Node(op, f"t_{op}", [], [], attrs)


def _i16(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int16)


def _tables(rng, sigmoid_like: bool):
    lo = 0 if sigmoid_like else -32768
    t = rng.integers(lo, 32768, 256)
    t[:2] = (lo, 32767)
    return _i16(t)


@pytest.mark.parametrize("lstm", [False, True])
def test_gated_state_c_equals_reference(lstm):
    rng = np.random.default_rng(7 + lstm)
    n = 4096
    state = _i16(rng.integers(-32768, 32768, n))
    state[:4] = (-32768, 32767, 0, -1)
    gate, cand, cand_gate = (cb.i8(rng.integers(-128, 128, n)) for _ in range(3))
    gate[:4], cand[:4] = (127, -128, 127, -128), (127, -128, -128, 127)
    gate_t, cand_t, cg_t = _tables(rng, True), _tables(rng, False), _tables(rng, True)
    saturated = 0
    pairs = [fp.quantize_multiplier(r) for r in (0.999, 0.5, 3e-5, 0.31)] + \
            [(M_EXTREMES[1], 0), (M_EXTREMES[0], 0), (M_EXTREMES[1], -31), (M_EXTREMES[0], -7)]
    for (sm, ss), (um, us) in zip(pairs, pairs[::-1]):
        at = dict(s_mult=sm, s_shift=ss, u_mult=um, u_shift=us)
        ins = [state, gate, cand, gate_t, cand_t] + ([cand_gate, cg_t] if lstm else [])
        ref = run_node(_node("QGatedState", **at), ins)
        assert ref.dtype == np.int16
        y = np.zeros(n, np.int16)
        p = cb.make(GatedParams, size=n, **at)
        assert cb.call("eq_gated_state_s16", p, state, gate, cand, gate_t, cand_t,
                       cand_gate if lstm else None, cg_t if lstm else None, y) == 0
        assert np.array_equal(y, ref), at
        saturated += int(np.sum(np.abs(ref.astype(np.int32)) == 32767) + np.sum(ref == -32768))
    assert saturated > 0  # the int16 saturation is exercised


def test_gated_state_c_in_place_and_bad_args():
    rng = np.random.default_rng(3)
    state = _i16(rng.integers(-32768, 32768, 64))
    gate, cand = cb.i8(rng.integers(-128, 128, 64)), cb.i8(rng.integers(-128, 128, 64))
    gate_t, cand_t = _tables(rng, True), _tables(rng, False)
    m, s = fp.quantize_multiplier(0.4)
    at = dict(s_mult=m, s_shift=s, u_mult=m, u_shift=s)
    ref = run_node(_node("QGatedState", **at), [state, gate, cand, gate_t, cand_t])
    y = state.copy()  # the planner may give the output the state's buffer
    assert cb.call("eq_gated_state_s16", cb.make(GatedParams, size=64, **at), y, gate, cand, gate_t, cand_t,
                   None, None, y) == 0
    assert np.array_equal(y, ref)
    bad = cb.make(GatedParams, size=64, **{**at, "s_shift": 1})  # a multiplier >= 1 could overflow
    assert cb.call("eq_gated_state_s16", bad, state, gate, cand, gate_t, cand_t, None, None, y) != 0
    with pytest.raises(OverflowError):
        run_node(_node("QGatedState", **{**at, "u_shift": 1}), [state, gate, cand, gate_t, cand_t])


def test_gated_state_reference_is_the_documented_update():
    """y = round(G s_s state + W C 2^-15) in the output's steps, within the two roundings."""
    rng = np.random.default_rng(11)
    state = _i16(rng.integers(-30000, 30000, 2000))
    gate, cand = cb.i8(rng.integers(-128, 128, 2000)), cb.i8(rng.integers(-128, 128, 2000))
    gate_t, cand_t = _tables(rng, True), _tables(rng, False)
    s_state, s_y = 3e-4, 5e-4  # real scales
    sm, ss = fp.quantize_multiplier(s_state / 2 ** 15 / s_y)
    um, us = fp.quantize_multiplier(2.0 ** -30 / s_y)
    y = run_node(_node("QGatedState", s_mult=sm, s_shift=ss, u_mult=um, u_shift=us),
                 [state, gate, cand, gate_t, cand_t]).astype(np.float64)
    g, c = gate_t[gate.astype(int) + 128] / 2 ** 15, cand_t[cand.astype(int) + 128] / 2 ** 15
    real = (g * s_state * state + (1 - g) * c) / s_y
    inside = np.abs(real) < 32767
    assert np.max(np.abs(y - real)[inside]) <= 1.0


def test_narrow_c_equals_reference_on_every_input():
    x = _i16(np.arange(-32768, 32768))
    for (m, s), zp in [(fp.quantize_multiplier(1 / 128.5), -3), (fp.quantize_multiplier(0.0039), 127),
                       ((M_EXTREMES[1], -31), -128), ((M_EXTREMES[0], 0), 0), ((M_EXTREMES[1], 15), 5)]:
        at = dict(y_zp=zp, mult=m, shift=s)
        ref = run_node(_node("QNarrow16", **at), [x])
        y = np.zeros(x.size, np.int8)
        assert cb.call("eq_narrow_s16_s8", cb.make(NarrowParams, size=x.size, **at), x, y) == 0
        assert np.array_equal(y, ref), at


def _compiled(net: str, state_bits: int, calib=None):
    from edgeq.driver.pipeline import compile_model
    from edgeq.options import CompileOptions
    path, _ = exported(net, "legacy")
    return compile_model(path, CompileOptions(target="reference", state_bits=state_bits, progress=False),
                         None, calib, log=lambda m: None)


@pytest.mark.parametrize("net", ["convgru", "convlstm"])
def test_quantized_cell_carries_int16_state(net):
    from edgeq.codegen.kernels import scratch_size
    from edgeq.planning.memory_plan import plan_memory
    q = _compiled(net, 16).qgraph
    updates = [n for n in q.nodes if n.op == "QGatedState"]
    assert len(updates) == 12  # one per time step
    prod = q.producer_map()
    for k, n in enumerate(updates):
        state = q.tensors[n.inputs[0]]
        assert state.dtype == "int16" and q.tensors[n.outputs[0]].dtype == "int16"
        assert (state.is_const if k == 0 else prod[n.inputs[0]] is updates[k - 1])
        narrow = [m for m in q.nodes if m.op == "QNarrow16" and m.inputs == n.outputs]
        assert len(narrow) == 1 and q.tensors[narrow[0].outputs[0]].dtype == "int8"
    plan = plan_memory(q, scratch_size=lambda n, g: scratch_size(n, g))
    wide = updates[3].outputs[0]
    assert plan.sizes[wide] == 2 * 16  # 16 units, 2 bytes each
    assert not [n for n in _compiled(net, 8).qgraph.nodes if n.op in ("QGatedState", "QNarrow16")]


@pytest.mark.parametrize("net", ["convgru", "convlstm"])
def test_expand_gated_state_is_the_same_float_function(net):
    from edgeq.floatexec.executor import run_float
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from passes.expand_gated_state import expand_gated_state
    path, shape = exported(net, "legacy")
    g = import_onnx(path)
    x = {g.inputs[0]: np.random.default_rng(5).normal(size=(4,) + tuple(shape[1:])).astype(np.float32)}
    before = run_float(g, x)[g.outputs[0]]
    g = expand_gated_state(g, PassContext())
    assert "GatedState" not in g.ops() and {"Sigmoid", "Tanh"} <= set(g.ops())
    np.testing.assert_allclose(run_float(g, x)[g.outputs[0]], before, rtol=1e-5, atol=1e-6)  # float, not int


def test_tflite_target_refuses_an_int16_state_in_one_line(tmp_path):
    path, _ = exported("convgru", "legacy")
    proc = edgeq_cli("compile", path, "-t", "tflite", "-o", tmp_path / "t", "--state-bits", "16")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--state-bits 8" in lines[0], proc.stderr
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("net,target,flags", [
    ("convgru", "host", ("--state-bits", "8")),
    ("convlstm", "cortex-m7", ()),
    pytest.param("convgru", "cortex-m55", (), marks=pytest.mark.slow),
    # the TVM lowering runs QGatedState / QNarrow16 as their C kernels
    pytest.param("convlstm", "arm64", (), marks=pytest.mark.slow),
])
def test_int16_state_builds_are_bit_exact(net, target, flags, tmp_path):
    path, shape = exported(net, "dynamo")
    compile_and_check(path, shape, target, tmp_path, seed=13, flags=flags)


def test_int16_state_is_closer_to_float_on_a_long_sequence(tmp_path):
    """A Conv-LSTM whose forget gate leans to keeping its cell (bias +3) over 40 steps: the
    int8 cell state drifts, the int16 one follows onnxruntime's float far more closely
    (benchmarks/rnn_state_bits.py prints the full table)."""
    from benchmarks.rnn_state_bits import export, float_outputs, quantized_outputs, sqnr_db
    path = export("LSTM", 40, tmp_path / "lstm40.onnx", 3.0)
    rng = np.random.default_rng(40)
    calib = rng.normal(size=(32, 1, 10, 40)).astype(np.float32)
    x = rng.normal(size=(40, 1, 10, 40)).astype(np.float32)
    ref = float_outputs(path, x)
    s8, s16 = (sqnr_db(ref, quantized_outputs(path, bits, calib, x)) for bits in (8, 16))
    assert s16 > s8 + 6.0, (s8, s16)


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_given_initial_state_is_an_int16_constant_in_c(op, tmp_path):
    """A non-zero initial state (h0, c0) becomes the first step's int16 constant array."""
    import onnx
    from .test_rnn import T, C, _gru_model
    m = _gru_model(op=op, h0=True, c0=op == "LSTM")
    path = tmp_path / f"{op}.onnx"
    onnx.save(m, path)
    compile_and_check(path, (1, T, C), "host", tmp_path, seed=17)
    assert re.search(r"static const int16_t l\d+_state\[4\]", (tmp_path / "host" / "src" / "model.c").read_text())
