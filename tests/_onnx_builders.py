"""Small models for the importer tests: torch nets exported with both exporters, and
hand-built ONNX graphs for ops and attribute forms torch never writes."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 9  # onnxruntime 1.31 rejects onnx 1.23's default IR 14


# ---- torch models -------------------------------------------------------------------------

class ConvBnNet(nn.Module):
    """Conv+BN+ReLU6, depthwise, residual add, avgpool, flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.b3 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)
        _randomize_bn(self)

    def forward(self, x):
        y = F.relu6(self.b1(self.c1(x)))
        z = F.relu6(self.b2(self.dw(y)))
        z = self.b3(self.pw(z)) + y
        z = torch.relu(z)
        return self.fc(torch.flatten(self.pool(z), 1))


class ActNet(nn.Module):
    """HardSwish, Sigmoid, Tanh, LeakyReLU, PReLU, concat, maxpool(ceil), pad, asym pads."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3)
        self.c2 = nn.Conv2d(6, 6, 3, dilation=2, padding=2)
        self.prelu = nn.PReLU(6)
        self.c3 = nn.Conv2d(12, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        _randomize_bn(self)

    def forward(self, x):
        x = F.pad(x, (1, 0, 2, 1))                 # asymmetric zero pad (left, right, top, bottom)
        a = F.hardswish(self.c1(x))
        b = torch.sigmoid(self.c2(a)) * torch.tanh(a)
        c = torch.cat([self.prelu(b), F.leaky_relu(a, 0.1)], dim=1)
        c = F.max_pool2d(c, 3, 2, ceil_mode=True)
        d = self.bn(self.c3(c))
        d = F.pad(d, (1, 1, 1, 1), value=0.5)
        return torch.softmax(torch.flatten(F.adaptive_avg_pool2d(d, 1), 1), dim=-1)


class SelectNet(nn.Module):
    """Issue 20's selection and reduction ops: reflect / replicate / circular pad, a
    squeeze-and-excitation gate (Mul of two activations, [N,C,1,1] * [N,C,H,W]), split,
    strided slices, nearest upsampling (scale and size), max and mean over spatial axes
    and over channels, an integer index."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.f1 = nn.Conv2d(8, 4, 1)
        self.f2 = nn.Conv2d(4, 8, 1)
        _randomize_bn(self)

    def forward(self, x):
        y = F.relu(self.bn(self.c(F.pad(x, (2, 1, 1, 2), mode="reflect"))))      # [1, 8, 13, 15]
        y = y * torch.sigmoid(self.f2(F.relu(self.f1(y.mean((2, 3), keepdim=True)))))
        a, b = torch.split(y, [3, 5], dim=1)
        a = F.pad(a, (1, 1, 0, 0), mode="replicate")[:, :, 1:13:2, 1:17:2]       # [1, 3, 6, 8]
        b = F.pad(b[:, :, 1:-1:2, ::2], (1, 0, 0, 1), mode="circular")[:, :, :6, :8]
        z = F.interpolate(torch.cat([b, a], 1), scale_factor=2, mode="nearest")  # [1, 8, 12, 16]
        z = z + F.interpolate(z[:, :, ::2, ::2], size=(12, 16), mode="nearest")
        m = z.amax(dim=(2, 3), keepdim=True) + z.mean(1, keepdim=True)          # [1, 8, 12, 16]
        return torch.cat([m[:, :, 0], z[:, 2], m.amax(1)], 1)                   # [1, 28, 16]


class PowNet(nn.Module):
    """Pow with constant exponents (2 -> Mul, 3, 1.5 -> tables), Sqrt, division by an
    activation (a reciprocal table): an RMS normalisation over channels."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.c(x)
        rms = torch.sqrt((y ** 2).mean(1, keepdim=True) + 1e-3)
        return y / rms + torch.relu(y) ** 3 + torch.relu(y).pow(1.5)


class TinyUNet(nn.Module):
    """A tiny U-Net: two stride-2 encoder stages, a ConvTranspose and an upsample decoder
    with skip connections (Concat), a per-pixel head."""

    def __init__(self, up="nearest"):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.e3 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.up1 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.d1 = nn.Conv2d(32, 8, 3, padding=1)
        self.up = up
        self.d2 = nn.Conv2d(16, 4, 3, padding=1)
        _randomize_bn(self)

    def forward(self, x):
        a = F.relu(self.e1(x))
        b = F.relu(self.e2(a))
        c = F.relu(self.bn(self.e3(b)))
        u = F.relu(self.d1(torch.cat([self.up1(c), b], 1)))
        if self.up == "nearest":
            u = F.interpolate(u, scale_factor=2, mode="nearest")
        else:
            u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
        return self.d2(torch.cat([u, a], 1))


class AttentionNet(nn.Module):
    """Single-head self-attention over [1, T, D]: two MatMuls of activations."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(1, 2) * 0.35
        return torch.softmax(scores, -1) @ self.v(x)


class ConvGRUNet(nn.Module):
    """A Conv-GRU keyword-spotting net: a conv over (frequency, time), the frequency bins
    flattened into features, a GRU (or LSTM) over the time steps, its last hidden state
    classified."""

    def __init__(self, cell=nn.GRU):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=(2, 1), padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.rnn = cell(8 * 5, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)
        _randomize_bn(self)

    def forward(self, x):                                   # [1, 1, 10 freq, 12 time]
        y = F.relu(self.bn(self.conv(x)))                   # [1, 8, 5, 12]
        _, h = self.rnn(y.flatten(1, 2).transpose(1, 2))    # [1, 12, 40] -> h [1, 1, 16]
        h = h[0] if isinstance(h, tuple) else h             # an LSTM's (h, c)
        return self.fc(h[-1])


class SmallNets:
    @staticmethod
    def all():
        return {"convbn": (ConvBnNet, (1, 3, 16, 16)), "acts": (ActNet, (1, 3, 15, 13)),
                "select": (SelectNet, (1, 3, 10, 12)), "pow": (PowNet, (1, 3, 8, 8)),
                "unet": (TinyUNet, (1, 3, 16, 20)),
                "unet_bilinear": (lambda: TinyUNet("bilinear"), (1, 3, 16, 20)),
                "attention": (AttentionNet, (1, 6, 8)),
                "convgru": (ConvGRUNet, (1, 1, 10, 12)),
                "convlstm": (lambda: ConvGRUNet(nn.LSTM), (1, 1, 10, 12))}


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics so BN folding is really tested."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    model.eval()


def export_legacy(model: nn.Module, shape, path: Path) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(shape),), str(path), dynamo=False, opset_version=13,
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=False,
                          input_names=["x"], output_names=["y"])
    return path


def export_dynamo(model: nn.Module, shape, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(shape),), str(path), dynamo=True,
                          input_names=["x"], output_names=["y"], verbose=False)
    return path


# ---- hand-built ONNX ----------------------------------------------------------------------

def make_model(nodes, inputs, outputs, inits=(), opset=13, name="g") -> onnx.ModelProto:
    """inputs/outputs: [(name, shape)] (shape entries may be str for dynamic dims)."""
    def vi(n, s):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    graph = helper.make_graph(list(nodes), name, [vi(*i) for i in inputs], [vi(*o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def ort_run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def model_bytes(model: onnx.ModelProto) -> bytes:
    buf = io.BytesIO()
    onnx.save(model, buf)
    return buf.getvalue()


_EXPORTED: dict[tuple[str, str], Path] = {}


def _export_dir() -> Path:
    """Exports are cached on disk, keyed by torch's version and this file's source, so
    only the first test run pays for the dynamo exporter (several seconds a model)."""
    import hashlib
    import os
    src = Path(__file__).read_bytes() + torch.__version__.encode()
    key = hashlib.sha256(src).hexdigest()[:16]
    root = Path(os.environ.get("EDGEQ_TEST_CACHE", Path.home() / ".cache" / "edgeq" / "test-exports"))
    d = root / key
    d.mkdir(parents=True, exist_ok=True)
    return d


def exported(name: str, exporter: str) -> tuple[Path, tuple]:
    """A SmallNets model exported once ('legacy' or 'dynamo'); dynamo needs onnxscript."""
    import os
    cls, shape = SmallNets.all()[name]
    key = (name, exporter)
    if key not in _EXPORTED:
        d = _export_dir()
        path = d / f"{name}_{exporter}.onnx"
        if not path.is_file():
            if exporter == "dynamo":
                import pytest
                pytest.importorskip("onnxscript")
            # Export into a private folder, then rename: parallel test runs never see a
            # half-written file (dynamo writes the .onnx and its .data separately).
            import tempfile
            tmp = Path(tempfile.mkdtemp(dir=d))
            torch.manual_seed(0)
            fn = export_legacy if exporter == "legacy" else export_dynamo
            fn(cls(), shape, tmp / path.name)
            for f in sorted(tmp.iterdir(), key=lambda p: p.suffix == ".onnx"):
                os.replace(f, d / f.name)
            tmp.rmdir()
        _EXPORTED[key] = path
    return _EXPORTED[key], shape


def rand(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def ort_per_sample(model, name: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime on each sample of a batch (the file's batch is 1)."""
    return np.concatenate([ort_run(model, {name: x[i:i + 1]})[0] for i in range(len(x))])
