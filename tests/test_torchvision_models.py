"""Models users deploy, as users export them (benchmarks/torchvision_models.py): the
torchvision classifiers, a Conv-GRU / Conv-LSTM keyword spotter and a tiny U-Net, with
both exporters and a dynamic batch axis, compiled for reference and host, outputs equal;
MobileNetV2 with its ImageNet weights against float, beside onnxruntime's QDQ.

The slow tests compile every model with no extra flags (the dynamic batch axis becomes 1)
and check host against the reference. The blocker causes are unit-tested by default.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PASSING = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x0_5", "squeezenet1_1",
           "mnasnet0_5", "efficientnet_b0", "regnet_x_400mf", "resnet18",
           "convgru_kws", "convlstm_kws", "tiny_unet", "tiny_unet_bilinear"]


def test_blockers_name_the_cause():
    from torchvision_models import blocker
    assert blocker("input 'x' has a dynamic or unknown shape [?x3x224x224] (fix: ...)") == \
        "dynamic input shape (needs --input-shape)"
    assert blocker("unsupported op Slice in node '/features/Slice' (fix: ...)") == "op Slice not supported"
    assert blocker("2 unsupported ops: Slice in nodes 'a', 'b'; Foo (domain 'com.x') in node 'c' "
                   "(fix: ...)") == "ops Slice, Foo not supported"
    assert blocker("Conv node 'c': requantization multiplier 1 > 1 would overflow the int32 "
                   "accumulator when shifted") == "per-channel requantization overflow (multiplier >= 1)"
    assert blocker("something new").startswith("other: something new")


def test_blockers_name_the_unsupported_ops_of_a_real_refusal(tmp_path):
    """The importer's own message for a model with two unknown ops, read back by the table."""
    import onnx
    from onnx import TensorProto, helper
    from edgeq.errors import EdgeqError
    from edgeq.importer.load import import_onnx
    from torchvision_models import blocker
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["h"], name="hm"),
                           helper.make_node("Det", ["h"], ["d"], name="det"),
                           helper.make_node("Hardmax", ["d"], ["y"], name="hm2")], "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(EdgeqError) as e:
        import_onnx(tmp_path / "m.onnx")
    assert blocker(str(e.value)) == "ops Hardmax, Det not supported"


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("name", PASSING)
def test_model_compiles_with_no_flags_and_host_equals_reference(name, exporter, tmp_path):
    pytest.importorskip("onnxscript")
    from torchvision_models import SMALL_NETS, check
    if name not in SMALL_NETS:
        _torchvision_or_skip()
    row = check(name, exporter, tmp_path, n_inputs=2, size=224)
    assert row.get("export_s") is not None, row  # exported with a dynamic batch axis (checked)
    assert row["plain"] == "ok", row      # no --input-shape: the dynamic batch axis becomes 1
    assert row.get("host") == "ok", row
    assert row["bit_exact"] is True, row


def _torchvision_or_skip():
    from edgeq.errors import EdgeqError
    from edgeq.models import torchvision_zoo
    try:
        torchvision_zoo.load_torchvision()
    except EdgeqError as e:
        pytest.skip(str(e))


@pytest.mark.slow
def test_mobilenet_v2_agrees_with_float_at_least_as_well_as_onnxruntime_qdq(tmp_path):
    """ImageNet weights, the user's path (edgeq compile --calib, run on host) against
    onnxruntime's quantize_static QDQ per-channel on the same file and calibration crops.
    64 crops: a few minutes; docs/torchvision.md has the 300-crop table."""
    pytest.importorskip("onnxruntime")
    _torchvision_or_skip()
    from edgeq.models import torchvision_zoo
    if "mobilenet_v2" not in torchvision_zoo.pretrained_architectures():
        pytest.skip("MobileNetV2's ImageNet weights are not installed")
    from torchvision_models import accuracy
    row = accuracy("mobilenet_v2", "legacy", tmp_path, n=64, n_calib=16, n_check=1)
    edgeq, ort = row["edgeq"], row["ort"]
    assert edgeq["top1"] >= ort["top1"], row
    assert edgeq["sqnr"] >= ort["sqnr"], row
