"""Float execution of the canonical float graph on torch (CPU, float32).

Two entry points:

- `run_float(graph, feeds, outputs=None)`: numpy in, numpy out, no autograd. Any tensor
  can be requested (all node outputs for calibration). Feeds may carry a batch of N
  samples although the graph was imported with batch 1: every op is batch-agnostic, and
  Reshape keeps the run-time batch in axis 0 when its static shape keeps the graph's.
- `FloatModule(graph)`: a torch.nn.Module with the Conv/Gemm weights and biases as
  nn.Parameters and every other constant as a buffer, so autograd works (Hessian
  traces, bias correction). `module.run(feeds, outputs)` returns any tensors;
  `forward(*inputs)` returns the graph outputs (one tensor, or a tuple for several).

Fused `act_min`/`act_max` attributes (set by `fuse_activation`) clamp the op's output.
The op semantics are ONNX's, in the canonical attribute form of docs/float_graph.md.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgeq.ir import Graph, Node
from edgeq.ops import holds, implements, lookup
from edgeq.ops.shapes import source_coords

def to_torch(a: np.ndarray) -> torch.Tensor:
    """Share memory with numpy when possible (weights are read-only here)."""
    a = np.asarray(a)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, copy=True, order="C")
    return torch.from_numpy(a)


# ---- op implementations ------------------------------------------------------------------

def _clamp(node: Node, y: torch.Tensor) -> torch.Tensor:
    lo, hi = node.attrs.get("act_min"), node.attrs.get("act_max")
    lo = None if lo is None or math.isinf(lo) else float(lo)
    hi = None if hi is None or math.isinf(hi) else float(hi)
    if lo is None and hi is None:
        return y
    return torch.clamp(y, min=lo, max=hi)


def tlbr_to_torch(p) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) -> F.pad's (left, right, top, bottom)."""
    return (int(p[1]), int(p[3]), int(p[0]), int(p[2]))


@implements("float", "Conv")
def conv(node, a, g):
    x, w, b = a[0], a[1], a[2]
    p = node.attrs["pads"]
    kw = dict(stride=tuple(node.attrs["strides"]), dilation=tuple(node.attrs["dilations"]),
              groups=int(node.attrs["group"]))
    if p[0] == p[2] and p[1] == p[3]:
        y = F.conv2d(x, w, b, padding=(int(p[0]), int(p[1])), **kw)
    else:  # asymmetric: zero-pad explicitly (torch's padding= is symmetric only)
        y = F.conv2d(F.pad(x, tlbr_to_torch(p)), w, b, **kw)
    return _clamp(node, y)


@implements("float", "Gemm")
def gemm(node, a, g):
    return _clamp(node, F.linear(a[0], a[1], a[2]))


@implements("float", "BatchNormalization")
def bn(node, a, g):
    x, scale, bias, mean, var = a
    # Inference-mode BN (running statistics); one fused pass instead of four.
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(node.attrs["epsilon"]))


@implements("float", "Clip")
def clip(node, a, g):
    lo, hi = node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf)
    lo, hi = (None if lo == -math.inf else lo), (None if hi == math.inf else hi)
    if lo is None and hi is None:  # a Clip without bounds (valid ONNX) is the identity
        return a[0]
    return torch.clamp(a[0], min=lo, max=hi)


@implements("float", "MaxPool")
def maxpool(node, a, g):
    x = a[0]
    p = node.attrs["pads"]
    if any(p):
        x = F.pad(x, tlbr_to_torch(p), value=-math.inf)  # padding never wins the max
    y = F.max_pool2d(x, tuple(node.attrs["kernel"]), tuple(node.attrs["strides"]),
                     dilation=tuple(node.attrs.get("dilations", [1, 1])))
    return _clamp(node, y)


@implements("float", "AveragePool")
def avgpool(node, a, g):
    x = a[0]
    k, s, p = tuple(node.attrs["kernel"]), tuple(node.attrs["strides"]), node.attrs["pads"]
    if not any(p):
        return _clamp(node, F.avg_pool2d(x, k, s))
    xp = F.pad(x, tlbr_to_torch(p))
    total = F.avg_pool2d(xp, k, s)  # mean over kH*kW taps, zeros included
    if node.attrs.get("count_include_pad", 0):
        return _clamp(node, total)
    # Divide by the number of taps inside the input instead of kH*kW.
    ones = F.pad(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), tlbr_to_torch(p))
    frac = F.avg_pool2d(ones, k, s)
    return _clamp(node, total / frac)


@implements("float", "Reshape")
def reshape(node, a, g):
    x = a[0]
    shape = [int(d) for d in node.attrs["shape"]]
    if x.numel() != int(np.prod(shape)):
        # Batched run of a batch-1 graph: the run-time batch replaces axis 0.
        shape[0] = -1
    return x.reshape(shape)


@implements("float", "Pad")
def pad(node, a, g):
    p = node.attrs["pads"]
    r = len(p) // 2
    tp: list[int] = []
    for ax in reversed(range(r)):
        tp += [int(p[ax]), int(p[ax + r])]
    return F.pad(a[0], tuple(tp), value=float(node.attrs.get("value", 0.0)))


@implements("float", "PRelu")
def prelu(node, a, g):
    x, s = a
    return torch.where(x < 0, x * s, x)


@implements("float", "Relu")
def relu(node, a, g):
    return torch.relu(a[0])


@implements("float", "Sigmoid")
def sigmoid(node, a, g):
    return torch.sigmoid(a[0])


@implements("float", "Tanh")
def tanh(node, a, g):
    return torch.tanh(a[0])


@implements("float", "Sqrt")
def sqrt(node, a, g):
    return torch.sqrt(torch.clamp(a[0], min=0.0))  # the declared semantics: negative -> 0


@implements("float", "Pow")
def pow_(node, a, g):
    e = float(node.attrs["exponent"])
    return torch.pow(a[0] if e.is_integer() else torch.clamp(a[0], min=0.0), e)


@implements("float", "HardSwish")
def hardswish(node, a, g):
    return F.hardswish(a[0])


@implements("float", "HardSigmoid")
def hardsigmoid(node, a, g):
    return torch.clamp(a[0] * node.attrs["alpha"] + node.attrs["beta"], 0.0, 1.0)


@implements("float", "LeakyRelu")
def leaky_relu(node, a, g):
    return F.leaky_relu(a[0], node.attrs["alpha"])


@implements("float", "Add")
def add(node, a, g):
    return _clamp(node, a[0] + a[1])


@implements("float", "Mul")
def mul(node, a, g):
    return _clamp(node, a[0] * a[1])


@implements("float", "GatedState")
def gated_state(node, a, g):
    state, gate, cand = a[0], torch.sigmoid(a[1]), torch.tanh(a[2])
    w = torch.sigmoid(a[3]) if len(a) > 3 and a[3] is not None else 1.0 - gate
    return gate * state + w * cand


@implements("float", "MatMul")
def matmul(node, a, g):
    return torch.matmul(a[0], a[1])


@implements("float", "Concat")
def concat(node, a, g):
    return torch.cat(a, dim=node.attrs["axis"])


@implements("float", "GlobalAveragePool")
def global_avgpool(node, a, g):
    return a[0].mean(dim=(2, 3), keepdim=True)


@implements("float", "Transpose")
def transpose(node, a, g):
    return a[0].permute(*node.attrs["perm"])


@implements("float", "Gather")
def gather(node, a, g):
    idx = torch.tensor([int(i) for i in node.attrs["indices"]], dtype=torch.long, device=a[0].device)
    return torch.index_select(a[0], int(node.attrs["axis"]), idx)


def _lerp_axis(x, axis: int, out_len: int, scale: float, mode: str):
    """Linear interpolation along one axis, onnxruntime's way: positions clamped to the input."""
    n = x.shape[axis]
    pos = np.clip(source_coords(out_len, n, scale, mode), 0, n - 1).astype(np.float32)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    view = [1] * x.dim()
    view[axis] = out_len
    frac = torch.tensor(pos - lo, dtype=x.dtype, device=x.device).reshape(view)
    take = lambda idx: torch.index_select(x, axis, torch.tensor(idx, device=x.device))  # noqa: E731
    a = take(lo)
    return a + (take(hi) - a) * frac


@implements("float", "ResizeBilinear")
def resize_bilinear(node, a, g):
    (oh, ow), (sh, sw) = node.attrs["sizes"], node.attrs["scales"]
    mode = node.attrs["coordinate_transformation_mode"]
    return _lerp_axis(_lerp_axis(a[0], 2, int(oh), float(sh), mode), 3, int(ow), float(sw), mode)


@implements("float", "Softmax")
def softmax(node, a, g):
    return torch.softmax(a[0], dim=node.attrs["axis"])


@implements("float", "Identity")
def identity(node, a, g):
    return a[0]


def run_node(node: Node, args: list, graph: Graph) -> torch.Tensor:
    if node.domain:
        raise NotImplementedError(f"float execution has no op {node.domain}.{node.op} "
                                  f"(node '{node.name}'); is this a float graph?")
    return lookup("float", node.op, node.name).fn(node, args, graph)


def _execute(graph: Graph, env: dict[str, torch.Tensor], const: Callable[[str], torch.Tensor],
             wanted: set[str]) -> dict[str, torch.Tensor]:
    """Run the nodes in order; free each activation after its last reader."""
    last: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for name in n.inputs:
            last[name] = i
    for i, n in enumerate(graph.nodes):
        args = []
        for name in n.inputs:
            if not name:
                args.append(None)
            elif name in env:
                args.append(env[name])
            else:
                args.append(const(name))
        env[n.outputs[0]] = run_node(n, args, graph)
        for name in n.inputs:
            if last.get(name) == i and name not in wanted and name in env:
                del env[name]
    return env


def _check_feeds(graph: Graph, feeds: dict) -> None:
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise KeyError(f"run_float: no feed for graph input(s) {missing}")
    for name in graph.inputs:
        want, got = graph.tensors[name].shape, tuple(feeds[name].shape)
        if len(want) != len(got) or tuple(want[1:]) != got[1:]:
            raise ValueError(f"run_float: feed '{name}' has shape {got}, the graph wants {want} "
                             "(any batch size in axis 0)")


def run_float(graph: Graph, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Evaluate the float graph; returns {name: float32 array} for `outputs` (default:
    the graph outputs). Inputs, constants and any node output may be requested."""
    outputs = list(graph.outputs if outputs is None else outputs)
    _check_feeds(graph, feeds)
    env = {n: to_torch(np.asarray(feeds[n], dtype=np.float32)) for n in graph.inputs}
    cache: dict[str, torch.Tensor] = {}

    def const(name: str) -> torch.Tensor:
        if name not in cache:
            data = graph.const(name)
            if data is None:
                raise KeyError(f"tensor '{name}' is neither computed nor constant")
            cache[name] = to_torch(data)
        return cache[name]

    with torch.inference_mode():
        env = _execute(graph, env, const, set(outputs))
        result = {}
        computed = {n.outputs[0] for n in graph.nodes}
        for name in outputs:
            t = env[name] if name in env else const(name)
            # Inputs and constants would come back as the caller's / the graph's own
            # arrays (torch shares numpy memory): copy those so edits stay local.
            result[name] = t.detach().numpy().astype(np.float32, copy=name not in computed)
    return result


class FloatModule(torch.nn.Module):
    """The graph as a torch module: Conv/Gemm W and B are Parameters, other constants
    buffers. Parameters are copies, so training them leaves the graph alone until
    `write_back()` stores them into the graph's constants."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        learnable = {i for n in graph.nodes if holds("weighted", n) for i in n.inputs[1:3] if i}
        self._key: dict[str, str] = {}
        self.weights = torch.nn.ParameterDict()
        for k, (name, t) in enumerate((n, t) for n, t in graph.tensors.items() if t.is_const):
            key = f"c{k}"  # torch keys cannot contain '.', tensor names may
            self._key[name] = key
            data = torch.from_numpy(np.array(t.data, dtype=np.float32 if t.data.dtype.kind == "f" else t.data.dtype))
            if name in learnable:
                self.weights[key] = torch.nn.Parameter(data)
            else:
                self.register_buffer(key, data)

    def tensor(self, name: str) -> torch.Tensor:
        key = self._key[name]
        return self.weights[key] if key in self.weights else getattr(self, key)

    def run(self, feeds: dict[str, torch.Tensor], outputs: list[str] | None = None) -> dict[str, torch.Tensor]:
        outputs = list(self.graph.outputs if outputs is None else outputs)
        env = {n: (v if isinstance(v, torch.Tensor) else to_torch(np.asarray(v, np.float32)))
               for n, v in feeds.items() if n in self.graph.inputs}
        env = _execute(self.graph, env, self.tensor, set(outputs))
        return {n: env[n] if n in env else self.tensor(n) for n in outputs}

    def forward(self, *inputs: torch.Tensor):
        res = self.run(dict(zip(self.graph.inputs, inputs)))
        outs = tuple(res[n] for n in self.graph.outputs)
        return outs[0] if len(outs) == 1 else outs

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the (trained) parameters into the graph's constant arrays."""
        for name, key in self._key.items():
            if key in self.weights:
                t = self.graph.tensors[name]
                t.data = self.weights[key].detach().numpy().astype(t.data.dtype).copy()
