"""Small rewrites that make an imported graph use one canonical op where exporters
spell it as several.

- HardSwish: ONNX opset < 14 has no HardSwish, so PyTorch's legacy exporter writes
  `x * HardSigmoid(x, alpha=1/6, beta=0.5)`. Both are the same function; one HardSwish
  node lets the quantizer use one lookup table instead of a LUT plus a QMul (which
  would lose precision in the intermediate int8 tensor).
"""
from __future__ import annotations

from edgeq.ir import Graph, Node


def canonicalize(g: Graph) -> None:
    _hardswish(g)


def _hardswish(g: Graph) -> None:
    prod = g.producer_map()
    users = g.consumer_map()
    for mul in list(g.nodes):
        if mul.op != "Mul":
            continue
        for k in (0, 1):
            hs = prod.get(mul.inputs[k])
            other = mul.inputs[1 - k]
            if (hs is None or hs.op != "HardSigmoid" or hs.inputs[0] != other
                    or len(users.get(hs.outputs[0], [])) != 1 or hs.outputs[0] in g.outputs
                    or abs(hs.attrs["alpha"] - 1 / 6) > 1e-6 or abs(hs.attrs["beta"] - 0.5) > 1e-6):
                continue
            i = g.nodes.index(mul)
            g.nodes[i] = Node("HardSwish", mul.name, [other], list(mul.outputs), {})
            g.nodes.remove(hs)
            del g.tensors[hs.outputs[0]]
            break
