"""A model too big for the part fails right after quantization (before bias correction and
the build), with the sizes, the budget and a CLI fix; the hints name what really exists."""
from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.errors import EdgeqError
from edgeq.targets import get_target
from edgeq.driver.pipeline import CompileOptions, compile_model
from .conftest import REPO
from .test_cli_errors import _save


def gemm_model(path, n_in, n_out):
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(n_out, n_in)).astype(np.float32) * 0.01, "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], "g", [x], [y], [w])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def wide_conv_model(path, channels, side):
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(channels, channels, 1, 1)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="pw")], "g", [x], [y], [w])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.fixture
def no_late_work(monkeypatch):
    """Fail the test if integer bias correction or any target build starts."""
    import edgeq.passes.correct_bias_integer as cb

    def boom(*a, **k):
        raise AssertionError("the fit check should have failed before this step")
    monkeypatch.setattr(cb, "correct_bias_quantized", boom)
    for name in ("cortex-m4", "cortex-m7"):
        monkeypatch.setattr(get_target(name), "build", boom)


def test_flash_overflow_fails_before_bias_correction_and_build(tmp_path, no_late_work):
    model = gemm_model(tmp_path / "big.onnx", 1100, 1000)  # 1.1 MB of int8 weights, 1 MB part
    calib = np.random.default_rng(1).normal(size=(8, 1100)).astype(np.float32)
    with pytest.raises(EdgeqError) as e:
        compile_model(str(model), CompileOptions(target="cortex-m7", progress=False), tmp_path / "out", calib,
                      log=lambda s: None)
    msg = str(e.value)
    assert re.search(r"needs at least [\d,]+ bytes of flash \(1,1\d\d,\d{3} of weights", msg), msg
    assert "the part has 1,048,576" in msg and "--weight-bits 4" in msg and "edgeq targets" in msg
    assert "with_budget" not in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == [model]


def test_sram_overflow_fails_before_the_build(tmp_path, no_late_work):
    model = wide_conv_model(tmp_path / "wide.onnx", 8, 96)  # 73,728-byte input and output, 128 KB part
    with pytest.raises(EdgeqError) as e:
        compile_model(str(model), CompileOptions(target="cortex-m4", progress=False), tmp_path / "out",
                      log=lambda s: None)
    msg = str(e.value)
    assert "bytes of SRAM" in msg and "activation arena" in msg and "the part has 131,072" in msg, msg
    assert "edgeq targets" in msg and "with_budget" not in msg


def test_a_model_that_fits_is_not_refused_by_the_estimate(tmp_path):
    """The estimate is a floor: a Gemm whose weights take most of the flash still builds."""
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("needs arm-none-eabi-gcc")
    model = gemm_model(tmp_path / "fits.onnx", 480, 1000)  # 480,000 B of int8 weights, 524,288 B part
    res = compile_model(str(model), CompileOptions(target="cortex-m4", progress=False, test_vectors=0),
                        tmp_path / "out", log=lambda s: None)
    assert res.report["flash_bytes"] <= get_target("cortex-m4").board["flash_bytes"]


def test_link_overflow_fix_names_cli_options():
    t = get_target("cortex-m7")
    err = t._overflow_error("region `FLASH' overflowed by 12 bytes", t.board, REPO / "no-such-build")
    assert "--weight-bits 4" in err.fix and "edgeq targets" in err.fix and "with_budget" not in err.fix


def test_openocd_hint_says_apt_get_not_make_setup(monkeypatch, tmp_path):
    from edgeq.targets import flash
    monkeypatch.setattr(shutil, "which", lambda name: None)
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    board = get_target("cortex-m7").board
    with pytest.raises(EdgeqError) as e:
        flash.flash_firmware(elf, board, "openocd")
    assert "apt-get install --no-install-recommends openocd" in e.value.fix and "make setup" not in e.value.fix


def test_setup_packages_match_setup_sh():
    """require_tool says `make setup` only for packages scripts/setup.sh really installs."""
    from edgeq.targets.c_project import SETUP_APT_PACKAGES
    text = (REPO / "scripts" / "setup.sh").read_text()
    listed = re.search(r"APT_PACKAGES=\(([^)]*)\)", text).group(1).split()
    assert set(listed) == SETUP_APT_PACKAGES
