"""Three small reference networks for Fashion-MNIST, in the shapes MCU users deploy.

All take float32 [N, 1, 28, 28] (see fmnist.preprocess: pixel / 255) and return logits
[N, 10] (no softmax: argmax is unchanged, and int8 logits keep more resolution than int8
probabilities; apply softmax on the host if you need probabilities).

Every Conv is followed by a BatchNormalization and has no bias (edgeq folds BN itself), and
the ops are the ones an MCU int8 runtime has: Conv (regular, depthwise, 1x1), BN, Relu,
Clip (ReLU6 exports as Clip(0, 6)), Add, GlobalAveragePool, Flatten, Gemm.

| name | shape | params | MACs |
|---|---|---|---|
| dscnn | conv3x3 s2 + 4 depthwise-separable blocks (MLPerf Tiny KWS DS-CNN style) | see README | |
| mobilenetv2 | stem + 5 inverted residuals (expansion 4, ReLU6, 3 residual Adds) + 1x1 head | | |
| resnet8 | stem + 3 residual stages (16, 32, 64), stages 2 and 3 stride 2 with 1x1 projection | | |

`count_params(model)` and `count_macs(model)` give the numbers in models/README.md (MACs:
multiply-accumulates of Conv and Linear layers for one image; BN, activations, Add and
pooling are not counted, as is usual).
"""
from __future__ import annotations

import torch
from torch import nn
from edgeq.models.registry import model_path

NUM_CLASSES = 10
INPUT_SHAPE = (1, 1, 28, 28)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str | None = "relu") -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd k) + BN [+ ReLU / ReLU6]."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "relu6":
        layers.append(nn.ReLU6(inplace=True))
    elif act is not None:
        raise ValueError(act)
    return nn.Sequential(*layers)


def _head(cin: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(cin, NUM_CLASSES))


# --------------------------------------------------------------------------- DS-CNN
class DSCNN(nn.Module):
    """DS-CNN: a regular 3x3 conv, then depthwise 3x3 + pointwise 1x1 pairs (each BN+ReLU).

    28x28 -> conv s2 -> 14x14x32 -> DS s2(64) -> 7x7x64 -> DS(64) -> DS(128) -> DS(128) -> GAP -> FC.
    The blocks run at 7x7: depthwise convs are slow to train on CPU in torch, and this keeps
    training to a few minutes on a shared 2-core machine (the 14x14 variant was ~2x slower
    per batch for a similar parameter count).
    """

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        blocks = [(w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 1), (4 * w, 4 * w, 1)]
        layers: list[nn.Module] = [conv_bn(1, w, 3, 2)]
        for cin, cout, s in blocks:
            layers.append(conv_bn(cin, cin, 3, s, groups=cin))   # depthwise
            layers.append(conv_bn(cin, cout, 1))                 # pointwise
        self.features = nn.Sequential(*layers)
        self.classifier = _head(4 * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    """1x1 expand (BN, ReLU6) -> depthwise 3x3 (BN, ReLU6) -> 1x1 project (BN, linear) [+ input]."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, hidden, 1, act="relu6"))
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden, act="relu6"))
        layers.append(conv_bn(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """Stem conv s2 (16) at 14x14, inverted residuals (t, c, stride), 1x1 head conv (128).

    14x14x16 -> IR(t1, 16) -> IR(t4, 24, s2) -> 7x7 -> IR(t4, 24) + -> IR(t4, 32) -> IR(t4, 32) + -> 1x1 128 -> GAP -> FC.
    Residual Adds where stride 1 and channels match (IR 1, 3 and 5).
    """

    CONFIG = [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 1), (4, 32, 1)]

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(1, 16, 3, 2, act="relu6")]
        cin = 16
        for t, c, s in self.CONFIG:
            layers.append(InvertedResidual(cin, c, s, t))
            cin = c
        layers.append(conv_bn(cin, 128, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.classifier = _head(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- ResNet-8
class BasicBlock(nn.Module):
    """conv3x3 (BN, ReLU) -> conv3x3 (BN) + shortcut -> ReLU; 1x1 s2 projection when shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, act=None)
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if (stride != 1 or cin != cout) else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny ResNet-8 layout (stem + 3 stages of 16/32/64), stem s2 for 28x28 input.

    28 -> stem s2 -> 14x14x16 -> stage1 (identity) -> stage2 s2 7x7x32 -> stage3 s2 4x4x64 -> GAP -> FC.
    """

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16, 3, 2)
        self.stages = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.classifier = _head(64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(self.stem(x)))


NETS = {"dscnn": DSCNN, "mobilenetv2": MobileNetV2, "resnet8": ResNet8}


def build(name: str) -> nn.Module:
    """A freshly initialised reference network by name (dscnn, mobilenetv2, resnet8)."""
    if name not in NETS:
        raise KeyError(f"unknown reference model {name!r}; choose from {sorted(NETS)}")
    return NETS[name]()


def from_onnx(name: str, path=None) -> nn.Module:
    """Rebuild a trained reference network in torch from its committed ONNX file (eval mode).

    The exporter keeps the state_dict names as initializer names (no constant folding),
    so the weights load by name; every parameter and BN statistic must be found. The
    exporter also deduplicates equal initializers into `Identity(initializer)` nodes (in
    resnet8 the two BN biases feeding each residual Add get equal gradients from zero
    init, so they stay bit-identical through training): those are followed too.
    """
    import onnx
    from onnx import numpy_helper

    if path is None:
        path = model_path(name)
    model = build(name)
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    state = model.state_dict()
    missing = [k for k in state if k not in inits and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path} does not hold {len(missing)} weights of {name}, e.g. {missing[:3]}")
    model.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state if k in inits}, strict=False)
    return model.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one input of `input_shape`."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out[0].numel() * k

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
