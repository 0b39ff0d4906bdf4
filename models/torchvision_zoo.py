"""torchvision's ImageNet classifiers as users export them: both torch exporters, a
dynamic batch axis. For benchmarks/torchvision_models.py and tests/test_torchvision_models.py.

    model = build("mobilenet_v3_small")             # eval mode; random init (seed 0)
    path = export(model, "m.onnx", "dynamo")         # or "legacy"; batch axis dynamic

Weights: random initialisation (torch.manual_seed(0), torchvision's own init), except
mobilenet_v2, which takes torchvision's ImageNet weights when the local weights package
is installed (edgeq.models.mobilenetv2_imagenet; nothing is downloaded, ever).

torchvision 0.28 (the release built for torch 2.13) is a CUDA build: its compiled ops
(nms, roi_align, ...) do not load beside the CPU torch, and `import torchvision` fails
registering fake kernels for them. Only its model definitions are used here, so
`load_torchvision` imports it with its extension module marked absent (as torchvision
marks it when its compiled ops fail to load) and without those fake-kernel registrations
(the detection ops' shape functions, which no classifier calls).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.models.mobilenetv2_imagenet import load_pretrained, weights_path
from edgeq.models.natural_images import natural_images

ARCHITECTURES = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x0_5",
                 "squeezenet1_1", "mnasnet0_5", "efficientnet_b0", "regnet_x_400mf", "resnet18"]
EXPORTERS = ["legacy", "dynamo"]
INPUT_SHAPE = (1, 3, 224, 224)
TORCHVISION_HINT = "pip install --no-deps torchvision==0.28.0 (the release built for torch 2.13)"


def _absent_extension() -> types.ModuleType:
    ext = types.ModuleType("torchvision.extension")

    def _assert_has_ops():
        raise RuntimeError("torchvision's compiled ops are not loaded (edgeq uses its model definitions only)")

    ext._has_ops = lambda: False
    ext._assert_has_ops = _assert_has_ops
    ext._load_library = lambda name: False
    ext._check_cuda_version = lambda: -1
    return ext


def load_torchvision():
    """torchvision with its compiled-ops extension marked absent (see the module doc)."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    stubs = {"torchvision.extension": _absent_extension(),
             "torchvision._meta_registrations": types.ModuleType("torchvision._meta_registrations")}
    sys.modules.update(stubs)
    try:
        import torchvision
    except ImportError:
        for name in stubs:
            sys.modules.pop(name, None)
        raise EdgeqError("torchvision is not installed", TORCHVISION_HINT) from None
    return torchvision


def build(name: str):
    """torchvision.models.NAME in eval mode (random init, seed 0; mobilenet_v2's ImageNet
    weights when installed locally)."""
    import torch
    tv = load_torchvision()
    if name not in ARCHITECTURES:
        raise EdgeqError(f"unknown architecture {name!r}", f"use one of {', '.join(ARCHITECTURES)}")
    torch.manual_seed(0)
    model = getattr(tv.models, name)(weights=None)
    if name == "mobilenet_v2" and pretrained_available():
        model.load_state_dict(load_pretrained().state_dict(), strict=True)
    return model.eval()


def pretrained_available() -> bool:
    try:
        weights_path()
        return True
    except EdgeqError:
        return False


def export(model, path: str | Path, exporter: str, input_shape=INPUT_SHAPE) -> Path:
    """ONNX with a dynamic batch axis, as a user writes it: the legacy exporter
    (opset 13, dynamic_axes, BatchNormalization kept) or the dynamo exporter (opset 18,
    a symbolic batch Dim; it folds BatchNormalization itself)."""
    import torch
    path = Path(path)
    x = torch.zeros(input_shape)
    with torch.no_grad():
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=13,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                              dynamic_shapes={"x": {0: batch}}, external_data=False, verbose=False)
        else:
            raise ValueError(f"exporter must be one of {EXPORTERS}")
    return path


def sample_inputs(n: int, size: int = INPUT_SHAPE[-1], seed: int = 0) -> np.ndarray:
    """n ImageNet-normalised NCHW crops of scikit-image's bundled photos."""
    return natural_images(n, seed=seed, size=size)
