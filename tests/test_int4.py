"""int4 weights end to end (issue 5 part 1): quantizer, packing, s4 C kernels, codegen, QEMU.

The s4 kernels (runtime_c/src/eq_*_s4.c) must give the integer reference's bytes exactly
(np.array_equal): an int4 layer is an int8 layer whose weights lie in [-7, 7], so the
reference needs no int4 code; only the C weight layout differs (two values per byte).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

from edgeq.codegen.carray import pack_s4, s4_bytes
from edgeq.reference import run_node
from edgeq.reference.conv import conv_accumulate

from . import _cbuild as cb
from ._ckernels import mults_shifts, node, rand_i8
from .conftest import REPO
from .test_c_kernels import fc_case, scratch_for

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc / qemu-system-arm missing (make setup)")


# ---- packing -----------------------------------------------------------------------------

def test_pack_s4_layout():
    # low nibble first, each row padded to a whole byte (eq_kernels.h's example)
    assert pack_s4(np.array([[-1, 7, -8]])).tolist() == [[0x7F, 0x08]]
    assert pack_s4(np.array([[1, 2], [-7, 0]])).tolist() == [[0x21], [0x09]]
    w = np.arange(-7, 8).reshape(3, 5)
    p = pack_s4(w)
    assert p.shape == (3, 3) and p.dtype == np.uint8 and s4_bytes(w.shape) == p.size
    lo = ((p & 0xF).astype(np.int16) ^ 8) - 8
    hi = ((p >> 4).astype(np.int16) ^ 8) - 8
    back = np.stack([lo, hi], axis=2).reshape(3, 6)[:, :5]
    assert np.array_equal(back, w) and (hi[:, -1] == 0).all()
    with pytest.raises(ValueError):
        pack_s4(np.array([[8]]))


# ---- C kernels against the integer reference ---------------------------------------------

# (N, Ci, H, W, Co, kH, kW, strides, pads (t, l, b, r), dilations, group); K odd in most,
# so every row ends in a padding nibble; K >= 8 covers the DSP path's 8-value blocks
S4_CONV_CASES = [
    (1, 3, 8, 8, 5, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),        # pointwise, K = 3
    (2, 5, 9, 7, 7, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 1),        # stride 2, asym pads, K = 45
    (1, 7, 9, 9, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 7),        # depthwise, K = 9
    (3, 3, 8, 6, 6, 3, 3, (2, 1), (0, 1, 1, 0), (1, 1), 3),        # depthwise, multiplier 2
    (1, 6, 7, 7, 9, 2, 3, (1, 1), (0, 2, 1, 0), (2, 1), 3),        # grouped, dilation, K = 12
    (1, 16, 5, 5, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),       # pointwise, K = 16
    (1, 17, 6, 5, 3, 3, 1, (2, 1), (1, 0, 0, 0), (1, 1), 1),       # K = 51: blocks + odd tail
    (2, 6, 3, 5, 4, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 2),        # grouped pointwise, odd H*W
]


def case_seed(*parts) -> int:
    """A generator seed from a test case's parameters that is the same in every run
    (hash() of a str changes with PYTHONHASHSEED, so a failure could not be reproduced)."""
    return zlib.crc32(repr(parts).encode())


def test_case_seed_does_not_depend_on_the_hash_seed():
    code = "from tests.test_int4 import case_seed; print(case_seed((1, 2), (0, 0), 's4'))"
    seeds = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONHASHSEED": h, "PATH": ""}, cwd=REPO).stdout
             for h in ("1", "2")}
    assert seeds == {f"{case_seed((1, 2), (0, 0), 's4')}\n"}


@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (5, -3)])
@pytest.mark.parametrize("case", S4_CONV_CASES)
def test_conv2d_s4(case, zps):
    n, ci, h, w, co, kh, kw, st, pads, dil, g = case
    x_zp, y_zp = zps
    rng = np.random.default_rng(case_seed(case, zps, "s4"))
    x = rand_i8(rng, (n, ci, h, w))
    wt = rand_i8(rng, (co, ci // g, kh, kw), -7, 7)
    wt.flat[:2] = (-7, 7)  # the extremes appear
    k_taps = ci // g * kh * kw
    bias = rng.integers(-500 * k_taps, 500 * k_taps, co).astype(np.int32)
    act = (max(-128, y_zp), 127) if zps == (5, -3) else (-128, 127)
    nd = node("QConv", strides=list(st), pads=list(pads), dilations=list(dil), group=g,
              x_zp=x_zp, y_zp=y_zp, act_min=act[0], act_max=act[1])
    acc = conv_accumulate(nd, x, wt, bias, 2)
    m, s = mults_shifts(rng, co, np.abs(acc).max(axis=(0, 2, 3)))
    ref = run_node(nd, [x, wt, bias, m, s])
    p = cb.make(cb.ConvParams, batch=n, in_c=ci, in_h=h, in_w=w, out_c=co, out_h=ref.shape[2],
                out_w=ref.shape[3], kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1],
                pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                dilation_h=dil[0], dilation_w=dil[1], groups=g, x_zp=x_zp, y_zp=y_zp,
                act_min=act[0], act_max=act[1])
    packed = np.ascontiguousarray(pack_s4(wt))
    assert packed.size == co * ((k_taps + 1) // 2)
    for scratch in (None, scratch_for("eq_conv2d_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_conv2d_s4", p, x, packed, bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)
    size = cb.library().eq_conv2d_s4_scratch_size
    size.restype = cb.ctypes.c_size_t
    assert size(cb.ctypes.byref(p)) == 2 * k_taps + 4


def test_conv2d_s4_no_bias_and_bad_args():
    rng = np.random.default_rng(4)
    x = rand_i8(rng, (1, 3, 5, 5))
    wt = rand_i8(rng, (2, 3, 3, 3), -8, 7)  # -8 is a valid nibble too
    m, s = (np.asarray(v, np.int32) for v in mults_shifts(rng, 2, np.full(2, 27 * 255 * 8)))
    nd = node("QConv", strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
              x_zp=-7, y_zp=3, act_min=-128, act_max=127)
    ref = run_node(nd, [x, wt, None, m, s])
    kw = dict(batch=1, in_c=3, in_h=5, in_w=5, out_c=2, out_h=5, out_w=5, kernel_h=3,
              kernel_w=3, stride_h=1, stride_w=1, pad_top=1, pad_left=1, pad_bottom=1,
              pad_right=1, dilation_h=1, dilation_w=1, groups=1, x_zp=-7, y_zp=3,
              act_min=-128, act_max=127)
    y = np.zeros_like(ref)
    packed = pack_s4(wt)
    assert cb.call("eq_conv2d_s4", cb.make(cb.ConvParams, **kw), x, packed, None, m, s, None, y) == 0
    assert np.array_equal(y, ref)
    untouched = np.full_like(ref, 99)
    for bad, code in (({"out_h": 4}, 2), ({"groups": 2}, 2), ({"y_zp": -129}, 1)):
        assert cb.call("eq_conv2d_s4", cb.make(cb.ConvParams, **{**kw, **bad}), x, packed,
                       None, m, s, None, untouched) == code, bad
    assert (untouched == 99).all()


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 10, 7), (3, 33, 5), (2, 257, 11), (1, 16, 4)])
@pytest.mark.parametrize("zps", [(0, 0), (-128, 127), (127, -128)])
def test_fully_connected_s4(shape, zps):
    _, k, co = shape
    x, wt, bias, m, s, ref, p = fc_case(2000 + k * 31 + co + zps[0], shape, zps, 7)
    packed = np.ascontiguousarray(pack_s4(wt))
    for scratch in (None, scratch_for("eq_fully_connected_s8", p, co, wt.shape)):
        y = np.zeros_like(ref)
        assert cb.call("eq_fully_connected_s4", p, x, packed, bias, m, s, scratch, y) == 0
        assert np.array_equal(y, ref)


# ---- quantizer ---------------------------------------------------------------------------

def _qw(qg, node_name):
    """(int weights, QParams) of the QConv/QGemm made from float node `node_name`."""
    n = next(n for n in qg.nodes if n.name == node_name)
    return qg.const(n.inputs[1]), qg.tensors[n.inputs[1]].q


@pytest.fixture(scope="module")
def dscnn():
    """fmnist_dscnn after the float passes, its calibrated ranges, calibration and test
    inputs, and its Conv/Gemm names (one import + calibration for the whole module)."""
    from edgeq.models import fmnist
    from edgeq.models.registry import model_path
    from edgeq.importer.load import import_onnx
    from edgeq.passctx import PassContext
    from edgeq.driver.pipeline import CompileOptions, find_ranges, float_passes, run_float_passes
    if not fmnist.available():
        pytest.skip("Fashion-MNIST is not installed (make setup)")
    images, _ = fmnist.load_fmnist("test")
    calib = fmnist.preprocess(images[:16])
    opts = CompileOptions(progress=False)
    g = import_onnx(model_path("dscnn"))
    g = run_float_passes(g, PassContext(calib=None, options={}), float_passes(opts))
    ranges = find_ranges(g, {g.inputs[0]: calib}, opts, [])
    names = [n.name for n in g.nodes if n.op in ("Conv", "Gemm")]
    return {"graph": g, "ranges": ranges, "calib": calib, "x": fmnist.preprocess(images[16:20]),
            "names": names}


def _mixed(names) -> dict:
    """int4 for the wide late layers and the classifier, int8 for the rest (unnamed)."""
    return {n: 4 for n in names[6:]}


def test_quantize_int4_uniform_and_per_layer(dscnn):
    from edgeq.quantization.quantize import quantize
    g, ranges, names = dscnn["graph"], dscnn["ranges"], dscnn["names"]
    q8 = quantize(g, ranges)
    q4 = quantize(g, ranges, weight_bits=4)
    qm = quantize(g, ranges, weight_bits=_mixed(names))
    for name in names:
        w8, p8 = _qw(q8, name)
        w4, p4 = _qw(q4, name)
        assert p8.bits == 8 and p4.bits == 4 and w4.dtype == np.int8
        assert np.abs(w4).max() == 7 and w4.min() >= -7  # symmetric: -8 never appears
        assert p4.per_channel and np.array_equal(p4.zero_point, np.zeros_like(p4.zero_point))
        # the same float weights, 18.14x coarser steps (127 / 7), up to a raised channel
        # (each scale is rounded to float32: 2^-23 relative on either side)
        assert np.all(p4.scale >= p8.scale * 127 / 7 * (1 - 2.0 ** -22))
        assert q4.meta["quant_layers"][name]["weight_bits"] == 4
        wm, pm = _qw(qm, name)
        assert pm.bits == (4 if name in names[6:] else 8)
        assert np.array_equal(wm, w4 if pm.bits == 4 else w8)
    assert qm.meta["quant_options"]["weight_bits"] == _mixed(names)


def test_quantize_rejects_bad_weight_bits(dscnn):
    from edgeq.errors import EdgeqError
    from edgeq.quantization.quantize import quantize
    g, ranges, names = dscnn["graph"], dscnn["ranges"], dscnn["names"]
    for bad in (1, 9, 4.0, True, "4", {names[0]: 16}, {names[0]: 4, "no_such_conv": 4}):
        with pytest.raises(EdgeqError) as e:
            quantize(g, ranges, weight_bits=bad)
        assert "weight_bits" in str(e.value)
    with pytest.raises(EdgeqError, match="no_such_conv"):
        quantize(g, ranges, weight_bits={"no_such_conv": 4})


def test_int4_graph_round_trips_through_onnx(dscnn, tmp_path):
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    from edgeq.graphio.onnx_io import load_graph, save_graph
    from edgeq.quantization.quantize import quantize
    qm = quantize(dscnn["graph"], dscnn["ranges"], weight_bits=_mixed(dscnn["names"]))
    back = load_graph(save_graph(qm, tmp_path / "model.q.onnx"))
    for name in dscnn["names"]:
        (w0, p0), (w1, p1) = _qw(qm, name), _qw(back, name)
        assert p1.bits == p0.bits and p1.axis == p0.axis and np.array_equal(w1, w0)
    feeds = quantize_inputs(qm, {qm.inputs[0]: dscnn["x"]})
    assert np.array_equal(run_reference(back, feeds)[back.outputs[0]],
                          run_reference(qm, feeds)[qm.outputs[0]])


def test_tflite_export_refuses_int4(dscnn):
    from edgeq.errors import EdgeqError
    from edgeq.quantization.quantize import quantize
    from edgeq.export.tflite import export_tflite
    last = dscnn["names"][-1]
    qg = quantize(dscnn["graph"], dscnn["ranges"], weight_bits={last: 4})
    with pytest.raises(EdgeqError) as e:
        export_tflite(qg)
    assert last in str(e.value) and "4-bit" in str(e.value)


# ---- generated C: host and QEMU, bit-exact, and the flash it saves -------------------------

def _build_and_check(target_name, qg, feeds, out_dir):
    """Build with embedded self-check vectors, run a batch; both equal the reference."""
    from edgeq.reference.interpreter import quantize_inputs, run_reference
    from edgeq.report.report import base_report
    from edgeq.targets import get_target
    t = get_target(target_name)
    report = base_report(qg, target_name)
    q = quantize_inputs(qg, feeds)
    t.build(qg, out_dir, report, {k: v[:2] for k, v in q.items()})
    assert report["self_check"]["passed"], report["self_check"]
    got, want = t.run(out_dir, q), run_reference(qg, q)
    for name in qg.outputs:
        assert np.array_equal(got[name], want[name]), name
    return report


@pytest.mark.parametrize("plan", ["int4", "mixed"])
def test_dscnn_int4_host_bit_exact(dscnn, plan, tmp_path):
    from edgeq.quantization.quantize import quantize
    bits = 4 if plan == "int4" else _mixed(dscnn["names"])
    qg = quantize(dscnn["graph"], dscnn["ranges"], weight_bits=bits)
    _build_and_check("host", qg, {qg.inputs[0]: dscnn["x"]}, tmp_path)
    src = (tmp_path / "model.c").read_text() if (tmp_path / "model.c").exists() else \
        next(tmp_path.rglob("model.c")).read_text()
    n4 = sum(1 for n in dscnn["names"] if (bits if isinstance(bits, int) else bits.get(n, 8)) == 4)
    assert src.count("eq_conv2d_s4(") + src.count("eq_fully_connected_s4(") == n4
    assert src.count("eq_conv2d_s8(") + src.count("eq_fully_connected_s8(") == len(dscnn["names"]) - n4


@needs_arm
@pytest.mark.qemu
def test_dscnn_int4_cortex_m7_and_flash(dscnn, tmp_path):
    """int4 and mixed builds run bit-exact on the Cortex-M7 board, and flash (text + rodata
    of the ELF) shrinks by about the weight bytes packing saves (give or take the s4
    kernels' code replacing or joining the s8 ones)."""
    from edgeq.quantization.quantize import quantize
    feeds = {dscnn["graph"].inputs[0]: dscnn["x"]}
    reps = {}
    for plan, bits in (("int8", 8), ("int4", 4), ("mixed", _mixed(dscnn["names"]))):
        qg = quantize(dscnn["graph"], dscnn["ranges"], weight_bits=bits)
        reps[plan] = _build_and_check("cortex-m7", qg, feeds, tmp_path / plan)
    f8, f4, fm = (reps[p]["flash_bytes"] for p in ("int8", "int4", "mixed"))
    saved = reps["int8"]["weights_bytes"] - reps["int4"]["weights_bytes"]
    assert saved > 15000  # fmnist_dscnn: ~34.6k int8 weights -> ~17.3k int4
    # the int8 build runs the channels-last DSP kernels, whose packed constants are larger
    # than the graph's (int16 depthwise weights, per-channel requantization records): int4
    # saves at least the weight bytes
    assert f8 - f4 > 0.85 * saved, (f8, f4, saved)
    assert f4 < fm < f8


@needs_arm
@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_dscnn_mixed_on_every_board(dscnn, board, tmp_path):
    from edgeq.quantization.quantize import quantize
    qg = quantize(dscnn["graph"], dscnn["ranges"], weight_bits=_mixed(dscnn["names"]))
    _build_and_check(board, qg, {qg.inputs[0]: dscnn["x"]}, tmp_path)


# ---- the command line ----------------------------------------------------------------------

def test_cli_weight_bits(tmp_path):
    from typer.testing import CliRunner
    from edgeq.cli import app
    from edgeq.models.registry import model_path
    import json
    runner = CliRunner()
    out = tmp_path / "b4"
    r = runner.invoke(app, ["compile", str(model_path("dscnn")), "--target", "reference",
                            "--weight-bits", "4", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["options"]["weight_bits"] == 4
    assert set(rep["options"]["weight_bits_per_layer"].values()) == {4}
    assert {row["weight_bits"] for row in rep["layers"] if row["weight_bits"]} == {4}
    for bad in ("auto", "3"):
        r = runner.invoke(app, ["compile", str(model_path("dscnn")), "--weight-bits", bad,
                                "-o", str(tmp_path / "x")])
        assert r.exit_code != 0 and bad in str(r.exception)  # an EdgeqError (main() prints it)


def test_pipeline_takes_a_per_layer_dict(dscnn, tmp_path):
    """CompileOptions.weight_bits as {float node name: bits} reaches the quantizer, and
    report.json (JSON) records the plan and every layer's bits."""
    import json
    from edgeq.models.registry import model_path
    from edgeq.driver.pipeline import CompileOptions, compile_model
    plan = _mixed(dscnn["names"])
    opts = CompileOptions(target="reference", weight_bits=plan, progress=False, test_vectors=0)
    res = compile_model(model_path("dscnn"), opts, tmp_path / "b", calib=dscnn["calib"][:4],
                        log=lambda s: None)
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["options"]["weight_bits"] == plan
    assert rep["options"]["weight_bits_per_layer"] == {n: plan.get(n, 8) for n in dscnn["names"]}
    assert {r["name"]: r["weight_bits"] for r in rep["layers"] if r["weight_bits"]} == \
        rep["options"]["weight_bits_per_layer"]
    assert res.report["weights_bytes"] == rep["weights_bytes"]
