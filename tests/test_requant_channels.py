"""Per-channel requantization of a depthwise conv with the channels real models have:

- ch0: ordinary weights on a wide input channel (it sets the input scale);
- ch1: dead after BatchNorm folding (gamma 0: all-zero weights, only its bias);
- ch2: tiny weights after folding (gamma 3.2e-6: |w| ~ 1e-6) and a large bias, whose int32
  bias would not fit at max|w| / 127, so its weight scale is raised;
- ch3: large weights on an input channel that stays near zero, so its output range is far
  narrower than its input step times its weights: real multiplier >= 1, a left shift.

Before the overflow check was per channel, this layer was refused ("requantization
multiplier > 1 would overflow"): ch2's bias was combined with ch1's and ch3's shifts. Now
it compiles, and the integer reference must equal every lowering byte for byte: the host C
build, the QEMU firmware of the Cortex-M4 (DSP), M7 and M55 (MVE) boards, the TFLite
export in LiteRT (BUILTIN_REF) and TFLite Micro, and the arm64 TVM lowering under qemu-aarch64. A real overflow is still refused, with a
message that names the channel, its bias and its shift.
"""
from __future__ import annotations

import shutil
from functools import lru_cache

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.errors import EdgeqError
from edgeq.reference.interpreter import dequantize_outputs, quantize_inputs, run_reference
from edgeq.quantization.rules.conv_gemm import accumulator_bounds, overflowing_channels

from .test_codegen_host import check_target

C = 4


def _bn(name: str, x: str, y: str, gamma, beta) -> tuple[onnx.NodeProto, list]:
    """BatchNorm with mean 0 and variance 1, so folding scales channel c by gamma[c]."""
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), f"{name}_{k}") for k, v in
             (("g", gamma), ("b", beta), ("m", np.zeros(C)), ("v", np.ones(C)))]
    node = helper.make_node("BatchNormalization", [x] + [t.name for t in inits], [y], name=name, epsilon=1e-12)
    return node, inits


def model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    dw = rng.normal(size=(C, 1, 3, 3)) * np.array([0.01, 0.5, 0.5, 1.0]).reshape(C, 1, 1, 1)
    pw = rng.normal(size=(C, C, 1, 1)) * 0.5
    bn1, i1 = _bn("bn1", "d", "dn", [1.0, 0.0, 3.2e-6, 4.0], [0.02, 0.05, -5.0, 0.0])
    bn2, i2 = _bn("bn2", "p", "pn", [1.0, 0.0, 1.0, 1.0], [0.0, 0.1, 0.0, 0.0])
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], name="dw", group=C, pads=[1, 1, 1, 1]), bn1,
             helper.make_node("Relu", ["dn"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "pw"], ["p"], name="pw"), bn2]
    inits = [numpy_helper.from_array(dw.astype(np.float32), "dw"),
             numpy_helper.from_array(pw.astype(np.float32), "pw")] + i1 + i2
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 8, 8])],
                          [helper.make_tensor_value_info("pn", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def calibration(n: int = 16, seed: int = 1) -> np.ndarray:
    """Input channel 0 wide (+-10), 1 and 2 moderate, 3 almost silent (+-0.001)."""
    span = np.array([10.0, 1.0, 1.0, 0.001], np.float32).reshape(1, C, 1, 1)
    return (np.random.default_rng(seed).uniform(-1, 1, (n, C, 8, 8)) * span).astype(np.float32)


@lru_cache(maxsize=None)
def compiled():
    from edgeq.driver.pipeline import CompileOptions, compile_model
    opts = CompileOptions(progress=False, calib_limit=16)
    return compile_model(model(), opts, None, calib=calibration(), log=lambda s: None)


def qgraph():
    return compiled().qgraph


def test_the_layer_has_every_kind_of_channel():
    info = qgraph().meta["quant_layers"]["dw"]
    assert info["dead_channels"] == 1
    assert info["scales_raised_for_bias"] == 1
    assert info["left_shift_channels"] >= 1
    g = qgraph()
    node = next(n for n in g.nodes if n.name == "dw")
    shift = g.const(node.inputs[4])
    assert shift[3] > 0 and shift[1] < 0  # ch3 shifts left; the dead channel never does
    # the case the old check refused: one channel's bias with another channel's shift
    bounds = accumulator_bounds(g.const(node.inputs[1]), g.const(node.inputs[2]))
    assert int(np.max(bounds)) << int(np.max(shift)) >= 2 ** 31
    assert overflowing_channels(bounds, shift).size == 0
    assert g.meta["quant_layers"]["pw"]["dead_channels"] == 1


def test_dead_and_biased_channels_give_their_bias():
    g = qgraph()
    x = calibration(8, seed=5)
    out = dequantize_outputs(g, run_reference(g, quantize_inputs(g, {"x": x})))[g.outputs[0]]
    s = float(np.ravel(g.tensors[g.outputs[0]].q.scale)[0])
    assert np.all(np.abs(out[:, 1] - 0.1) <= s)  # the dead channel of pw: its bias, to an output step
    from edgeq.floatexec.executor import run_float
    want = run_float(compiled().float_graph, {"x": x})[compiled().float_graph.outputs[0]]
    assert np.max(np.abs(out - want)) < 0.05 * np.max(np.abs(want))


def test_host_c_is_bit_exact(tmp_path):
    from edgeq.targets import get_target
    check_target(get_target("host"), qgraph(), tmp_path)


def test_tflite_litert_and_tflm_are_bit_exact():
    pytest.importorskip("ai_edge_litert.interpreter")
    from .test_tflite_export import assert_exact
    assert_exact(qgraph())


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="the Arm toolchain or QEMU is missing")
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_qemu_boards_are_bit_exact(target, tmp_path):
    from edgeq.targets import get_target
    check_target(get_target(target), qgraph(), tmp_path)


def test_a_real_overflow_names_the_channel_and_its_shift():
    """A 64-input-channel 3x3 conv whose calibrated output range (+-1e-5) is ~1e-8 of what
    its weights can produce: multiplier ~ 790 (shift 10), so (255 * sum|w|) << 10 ~ 2^34
    really exceeds 2^31."""
    from edgeq.quantization.quantize import quantize
    from edgeq.importer.load import import_onnx
    w = numpy_helper.from_array(np.ones((2, 64, 3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    graph = import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    with pytest.raises(EdgeqError) as e:
        quantize(graph, {"x": (-1.0, 1.0), "y": (-1e-5, 1e-5)})
    msg = str(e.value)
    assert "Conv node 'conv', output channel 0 (and 1 more channels): the int32 accumulator can reach " in msg
    assert "shifted left by" in msg and "which overflows 2^31" in msg


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None or shutil.which("aarch64-linux-gnu-gcc") is None,
                    reason="needs qemu-aarch64 and aarch64-linux-gnu-gcc")
def test_tvm_lowering_is_bit_exact(tmp_path):
    """edgeq.lower_tvm (the arm64 kernels) on the same graph: its per-channel left shifts too."""
    pytest.importorskip("tvm")
    from edgeq.lower_tvm.cpus import get_cpu
    from edgeq.lower_tvm.model import lower_model, run
    g = qgraph()
    feeds = {g.inputs[0]: np.random.default_rng(3).integers(-128, 128, (3,) + g.tensors[g.inputs[0]].shape[1:],
                                                             dtype=np.int8)}
    want = run_reference(g, feeds)
    m = lower_model(g, get_cpu("cortex-a76"))
    res = run(m.write(tmp_path, feeds, want), m)
    assert res.mismatches == 0
    for name in g.outputs:
        assert np.array_equal(res.outputs[name], want[name])
