"""Graph verifier: the invariants every stage promises, checked after every pass in tests.

`verify(graph)` raises AssertionError naming the node and the broken rule:

- structure: node names non-empty and unique; every tensor a node reads is a graph
  input, a constant or the output of an earlier node (topological order); no tensor is
  written twice, and no node writes a graph input or a constant; graph outputs exist;
- every node (from its op's declaration, edgeq/ops): a declared op, its input count,
  its required attributes, constants where the op wants constants, an allowed `axis`,
  one output, and the recorded output shape equal to the one the op's shape rule computes
  (so elementwise broadcasting, reshapes and pads are consistent);
- float graphs (docs/float_graph.md): Conv/Gemm weight and bias shapes fit the input,
  BatchNormalization parameters are per channel, activations are float32;
- quantized graphs (docs/semantics.md): every int8 activation tensor has QParams,
  QConv/QGemm weights fit the input, and constants have integer dtypes where the
  contract says so (bias/multiplier int32).
"""
from __future__ import annotations

import numpy as np

from edgeq.ir import QDOMAIN, Graph, Node
from edgeq.ops import FLOAT_OPS, OpDecl, decl_of


def _fail(node: Node | None, msg: str):
    where = f"node '{node.name}' ({node.domain + '.' if node.domain else ''}{node.op}): " if node else ""
    raise AssertionError(where + msg)


def verify(graph: Graph) -> None:
    _structure(graph)
    quantized = graph.is_quantized()
    for node in graph.nodes:
        if node.domain not in ("", QDOMAIN):
            continue  # another domain's op: nothing declared to check
        decl = decl_of(node)
        if decl is None:
            known = FLOAT_OPS if not node.domain else {}
            _fail(node, f"not a declared op" + (f" (canonical float ops: {', '.join(known)})" if known else ""))
        _declared(graph, node, decl)
        if node.domain == QDOMAIN:
            _quantized_node(graph, node)
        else:
            _float_node(graph, node, quantized)
    if quantized:
        _qparams(graph)


def _structure(graph: Graph) -> None:
    names: set[str] = set()
    defined = set(graph.inputs)
    for name in graph.inputs:
        t = graph.tensors.get(name)
        assert t is not None, f"graph input '{name}' has no tensor entry"
        assert not t.is_const, f"graph input '{name}' is a constant"
    for name, t in graph.tensors.items():
        assert t.name == name, f"tensor entry '{name}' is named '{t.name}'"
        if t.is_const:
            defined.add(name)
            assert tuple(t.data.shape) == tuple(t.shape), \
                f"constant '{name}': shape {t.shape} but data has {t.data.shape}"
            assert t.data.dtype.name == t.dtype, f"constant '{name}': dtype {t.dtype} but data is {t.data.dtype}"
    written: set[str] = set()
    for node in graph.nodes:
        if not node.name:
            _fail(node, "empty node name")
        if node.name in names:
            _fail(node, "duplicate node name")
        names.add(node.name)
        for i in node.inputs:
            if i and i not in defined:
                where = "is produced later (graph not in topological order)" if any(
                    i in n.outputs for n in graph.nodes) else "is never defined"
                _fail(node, f"input '{i}' {where}")
            if i and i not in graph.tensors:
                _fail(node, f"input '{i}' has no tensor entry")
        for o in node.outputs:
            if not o:
                continue
            if o in written:
                _fail(node, f"output '{o}' is written by two nodes")
            if o in graph.inputs or (o in graph.tensors and graph.tensors[o].is_const):
                _fail(node, f"output '{o}' overwrites a graph input or a constant")
            if o not in graph.tensors:
                _fail(node, f"output '{o}' has no tensor entry")
            written.add(o)
            defined.add(o)
    for o in graph.outputs:
        assert o in defined, f"graph output '{o}' is never produced"
    assert len(set(graph.outputs)) == len(graph.outputs), f"duplicate graph outputs {graph.outputs}"


def _shape(graph: Graph, name: str) -> tuple:
    return tuple(graph.tensors[name].shape)


def _declared(graph: Graph, node: Node, decl: OpDecl) -> None:
    """What every node owes its op's declaration."""
    fewest, most = decl.arity()
    if not fewest <= len(node.inputs) <= most:
        want = fewest if fewest == most else f"{fewest}..{most}"
        _fail(node, f"has {len(node.inputs)} inputs, expected {want}")
    missing = [k for k in decl.required_attrs() if k not in node.attrs]
    if missing:
        _fail(node, f"missing attributes {missing}")
    if len(node.outputs) != 1:
        _fail(node, f"has {len(node.outputs)} outputs; edgeq ops have one")
    for k, name in enumerate(node.inputs):
        if name and decl.input_spec(k).const and graph.const(name) is None:
            _fail(node, f"parameter '{name}' must be a constant")
    if decl.axis is not None and node.inputs and node.inputs[0]:
        rank = len(_shape(graph, node.inputs[0]))
        axis = int(node.attrs.get("axis", rank - 1))
        problem = decl.axis_problem(axis + rank if axis < 0 and node.domain else axis, rank)
        if problem:
            _fail(node, problem)


def _output_shape(graph: Graph, node: Node, decl: OpDecl, ins: list) -> None:
    """The recorded output shape is the one the op's shape rule gives."""
    try:
        want = tuple(decl.shape(ins, node.attrs))
    except (ValueError, IndexError, KeyError, TypeError) as e:
        _fail(node, f"inconsistent input shapes {ins}: {e}")
    got = _shape(graph, node.outputs[0])
    if got != want:
        _fail(node, f"output '{node.outputs[0]}' is recorded as {got}, the op gives {want} from inputs {ins}")


def _float_node(graph: Graph, node: Node, quantized: bool) -> None:
    ins = [_shape(graph, i) for i in node.inputs]
    if node.op == "Conv":
        x, w, b = ins
        g = int(node.attrs["group"])
        if len(x) != 4 or len(w) != 4:
            _fail(node, f"input {x} / weight {w} must both be rank 4")
        if w[1] * g != x[1] or w[0] % g:
            _fail(node, f"weight {w} with group={g} does not fit input channels {x[1]}")
        if b != (w[0],):
            _fail(node, f"bias shape {b} != ({w[0]},)")
        for key, n in (("strides", 2), ("pads", 4), ("dilations", 2)):
            if len(node.attrs[key]) != n:
                _fail(node, f"{key} must have {n} values, got {node.attrs[key]}")
    elif node.op == "Gemm":
        x, w, b = ins
        if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
            _fail(node, f"x {x} @ W{w}.T does not fit (x must be [N, K], W [Co, K])")
        if b != (w[0],):
            _fail(node, f"bias shape {b} != ({w[0]},)")
    elif node.op == "BatchNormalization":
        c = ins[0][1]
        if any(s != (c,) for s in ins[1:]):
            _fail(node, f"parameters {ins[1:]} must all be ({c},)")
    # A quantized graph may keep float ops only where its own rules say so; the shape
    # rule holds in both worlds.
    _output_shape(graph, node, decl_of(node), ins)
    if not quantized:
        for name in list(node.inputs) + node.outputs:
            t = graph.tensors[name] if name else None
            if t is not None and not t.is_const and t.dtype != "float32":
                _fail(node, f"activation '{name}' is {t.dtype}, float graphs are float32")


def _quantized_node(graph: Graph, node: Node) -> None:
    ins = [_shape(graph, i) if i else None for i in node.inputs]
    if node.op == "QConv":
        x, w = ins[0], ins[1]
        g = int(node.attrs.get("group", 1))
        if len(x) not in (3, 4) or len(w) != len(x) or w[1] * g != x[1]:  # 1-D conv: [N, C, L]
            _fail(node, f"weight {w} with group={g} does not fit input {x}")
        _int_params(graph, node, w[0])
    elif node.op == "QGemm":
        x, w = ins[0], ins[1]
        if len(w) != 2 or int(np.prod(x[1:])) != w[1]:
            _fail(node, f"weight {w} does not fit input {x}")
        _int_params(graph, node, w[0])
    _output_shape(graph, node, decl_of(node), ins)


def _int_params(graph: Graph, node: Node, co: int) -> None:
    """bias, mult, shift: int32 constants with one value per output channel."""
    for name in node.inputs[2:5]:
        if not name:
            continue
        data = graph.const(name)
        if data is None:
            _fail(node, f"integer parameter '{name}' must be a constant")
        if data.dtype != np.int32:
            _fail(node, f"integer parameter '{name}' is {data.dtype}, expected int32")
        if data.size not in (1, co):
            _fail(node, f"integer parameter '{name}' has {data.size} values for {co} output channels")
    w = graph.const(node.inputs[1])
    if w is None or w.dtype.kind != "i":
        _fail(node, f"weight '{node.inputs[1]}' must be an integer constant")


def _qparams(graph: Graph) -> None:
    for name, t in graph.tensors.items():
        if t.is_const or t.dtype != "int8":
            continue
        if t.q is None:
            raise AssertionError(f"int8 activation '{name}' has no QParams")
        if t.q.axis is None and np.ndim(t.q.scale) != 0 and np.size(t.q.scale) != 1:
            raise AssertionError(f"int8 activation '{name}': per-tensor QParams with {np.size(t.q.scale)} scales")
        if np.any(np.asarray(t.q.scale) <= 0):
            raise AssertionError(f"int8 activation '{name}': non-positive scale {t.q.scale}")
