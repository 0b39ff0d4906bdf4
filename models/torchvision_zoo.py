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
from edgeq.models.mobilenetv2_imagenet import PIP_HINT, cache_dir, load_pretrained, weights_path
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


def pretrained_architectures() -> list[str]:
    """The architectures built with real (ImageNet) weights on this machine."""
    return ["mobilenet_v2"] if pretrained_available() else []


def export(model, path: str | Path, exporter: str, input_shape=INPUT_SHAPE) -> Path:
    """ONNX with a dynamic batch axis, as a user writes it: the legacy exporter
    (opset 13, dynamic_axes, BatchNormalization kept) or the dynamo exporter (opset 18,
    a symbolic batch Dim; it folds BatchNormalization itself).

    The dynamo exporter traces an example batch of 2: with a batch of 1, torch.export
    specializes the axis to 1 without a word when the model branches on it (nn.GRU and
    nn.LSTM do, building their initial state), and writes a static file. The legacy
    exporter traces batch 1: it bakes a recurrent cell's initial-state batch into a
    constant otherwise. The written file's batch axis is checked either way."""
    import onnx
    import torch
    path = Path(path)
    with torch.no_grad():
        if exporter == "legacy":
            torch.onnx.export(model, (torch.zeros(input_shape),), str(path), dynamo=False, opset_version=13,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(model, (torch.zeros((2, *input_shape[1:])),), str(path), dynamo=True,
                              input_names=["x"], output_names=["y"],
                              dynamic_shapes={"x": {0: batch}}, external_data=False, verbose=False)
        else:
            raise ValueError(f"exporter must be one of {EXPORTERS}")
    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    if not dim.dim_param:
        raise ValueError(f"the {exporter} exporter wrote a static batch axis ({dim.dim_value}) into {path.name}")
    return path


def cached_export(name: str, exporter: str, input_shape=INPUT_SHAPE) -> Path:
    """export(build(name), ...) written once into the cache folder (~/.cache/edgeq, never
    the repository), keyed by torch's and torchvision's versions, the weights and the shape:
    the dynamo exporter takes a minute on a 224x224 model."""
    import hashlib
    import os
    import tempfile
    import torch
    weights = "imagenet" if name == "mobilenet_v2" and pretrained_available() else "seed0"
    key = hashlib.sha256(f"{torch.__version__} {load_torchvision().__version__} {weights} dynamo-batch-2 "
                         f"{'x'.join(map(str, input_shape))}".encode()).hexdigest()[:16]
    path = cache_dir() / "torchvision" / key / f"{name}_{exporter}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # a reader never sees half a file
            os.replace(export(build(name), Path(tmp) / path.name, exporter, input_shape), path)
    return path


def sample_inputs(n: int, size: int = INPUT_SHAPE[-1], seed: int = 0) -> np.ndarray:
    """n ImageNet-normalised NCHW crops of scikit-image's bundled photos."""
    return natural_images(n, seed=seed, size=size)
