"""Attribute mutations: missing, wrong type, wrong length, out-of-range values, unknown names.

Values are drawn from the op's ONNX schema where it has one, so a mutation hits the
attributes the importer reads (Conv strides, Cast to, Softmax axis, ...), not only the
ones the file happens to spell out.
"""
from __future__ import annotations

import onnx
from onnx import AttributeProto, TensorProto, helper

from tests.fuzz.case import (BAD_FLOATS, BAD_INTS, BAD_STRINGS, HOSTILE_NAMES, Case, NotApplicable, chance,
                             default_opset, mutation, nodes_with_attrs, pick)

A = AttributeProto


def schema_attrs(node: onnx.NodeProto, opset: int) -> dict[str, int]:
    """{attribute name: AttributeProto type} the op's schema declares ({} for unknown ops)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except Exception:  # noqa: BLE001 - unknown op or domain
        return {}
    return {name: int(a.type) for name, a in schema.attributes.items()}


def _bad_value(rng, atype: int, old: AttributeProto | None):
    """A value of type `atype`, often at an edge (list values keep or change the length)."""
    n = len(old.ints or old.floats or old.strings) if old is not None else int(rng.integers(0, 5))
    if atype == A.INT:
        return int(pick(rng, BAD_INTS))
    if atype == A.FLOAT:
        return float(pick(rng, BAD_FLOATS))
    if atype == A.STRING:
        return pick(rng, BAD_STRINGS + HOSTILE_NAMES[:6])
    if atype == A.INTS:
        if old is not None and old.ints and chance(rng, 0.5):  # one element at an edge
            v = list(old.ints)
            v[int(rng.integers(len(v)))] = int(pick(rng, BAD_INTS))
            return v
        return [int(pick(rng, BAD_INTS)) for _ in range(n)]
    if atype == A.FLOATS:
        return [float(pick(rng, BAD_FLOATS)) for _ in range(n)]
    if atype == A.STRINGS:
        return [pick(rng, BAD_STRINGS) for _ in range(n)]
    if atype == A.TENSOR:
        return _odd_tensor(rng)
    raise NotApplicable(f"attribute type {atype}")


def _odd_tensor(rng) -> TensorProto:
    choice = int(rng.integers(6))
    if choice == 0:
        return helper.make_tensor("t", TensorProto.FLOAT, [0], [])
    if choice == 1:  # dims that promise far more data than is there
        t = helper.make_tensor("t", TensorProto.FLOAT, [1], [1.0])
        t.dims[:] = [2**20, 2**20]
        return t
    if choice == 2:
        return helper.make_tensor("t", TensorProto.STRING, [2], [b"a", b"b"])
    if choice == 3:
        return helper.make_tensor("t", TensorProto.INT64, [2], [2**62, -2**62])
    if choice == 4:
        return helper.make_tensor("t", TensorProto.FLOAT, [3], [float("nan"), float("inf"), 1.0])
    t = helper.make_tensor("t", TensorProto.FLOAT, [2], [1.0, 2.0])
    t.data_type = int(pick(rng, [0, TensorProto.COMPLEX64, TensorProto.BFLOAT16, 999]))
    return t


def _replace(node: onnx.NodeProto, attr: AttributeProto) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == attr.name:
            node.attribute[i].CopyFrom(attr)
            return
    node.attribute.append(attr)


def _make(name: str, atype: int, value) -> AttributeProto:
    return helper.make_attribute(name, value, attr_type=atype)


@mutation("attr_missing")
def attr_missing(c: Case, rng) -> None:
    node = pick(rng, nodes_with_attrs(c.model))
    i = int(rng.integers(len(node.attribute)))
    c.note(f"{node.op_type} '{node.name}': attribute {node.attribute[i].name} removed")
    del node.attribute[i]


@mutation("attr_type")
def attr_type(c: Case, rng) -> None:
    """Same name, another type; or a type field that does not match the value fields."""
    node = pick(rng, nodes_with_attrs(c.model))
    old = node.attribute[int(rng.integers(len(node.attribute)))]
    types = [A.FLOAT, A.INT, A.STRING, A.TENSOR, A.FLOATS, A.INTS, A.STRINGS]
    new_type = pick(rng, [t for t in types if t != old.type])
    if chance(rng, 0.3):  # the type says one thing, the fields another
        a = AttributeProto()
        a.CopyFrom(old)
        a.type = int(pick(rng, types + [A.UNDEFINED, A.GRAPH, A.SPARSE_TENSOR, A.TYPE_PROTO]))
        c.note(f"{node.op_type} '{node.name}': attribute {old.name} type field -> {a.type}, values kept")
    else:
        a = _make(old.name, new_type, _bad_value(rng, new_type, None))
        c.note(f"{node.op_type} '{node.name}': attribute {old.name} -> type {A.AttributeType.Name(new_type)}")
    _replace(node, a)


@mutation("attr_length")
def attr_length(c: Case, rng) -> None:
    """A list attribute (strides, pads, perm, kernel_shape, ...) one element short or long."""
    opset = default_opset(c.model)
    cands = []
    for n in c.model.graph.node:
        have = {a.name: a for a in n.attribute}
        for name, t in schema_attrs(n, opset).items():
            if t in (A.INTS, A.FLOATS):
                cands.append((n, name, t, have.get(name)))
    node, name, t, old = pick(rng, cands)
    vals = list((old.ints if t == A.INTS else old.floats) if old is not None else [])
    if vals and chance(rng, 0.5):
        vals = vals[:int(rng.integers(len(vals)))]
    else:
        extra = int(rng.integers(1, 4))
        vals += [int(rng.integers(-2, 4)) if t == A.INTS else float(rng.normal()) for _ in range(extra)]
    _replace(node, _make(name, t, vals))
    c.note(f"{node.op_type} '{node.name}': attribute {name} -> {vals}")


@mutation("attr_value")
def attr_value(c: Case, rng) -> None:
    """An attribute of the op's schema (present or not) set to an edge value."""
    opset = default_opset(c.model)
    cands = [(n, name, t) for n in c.model.graph.node for name, t in schema_attrs(n, opset).items()
             if t in (A.INT, A.FLOAT, A.STRING, A.INTS, A.FLOATS, A.STRINGS, A.TENSOR)]
    node, name, t = pick(rng, cands)
    old = next((a for a in node.attribute if a.name == name), None)
    value = _bad_value(rng, t, old)
    _replace(node, _make(name, t, value))
    shown = repr(value)[:80] if not isinstance(value, TensorProto) else f"tensor {list(value.dims)}"
    c.note(f"{node.op_type} '{node.name}': attribute {name} = {shown}")


@mutation("attr_unknown")
def attr_unknown(c: Case, rng) -> None:
    """An attribute the op does not have (another op's name, garbage, an empty name)."""
    node = pick(rng, c.model.graph.node)
    known = set(schema_attrs(node, default_opset(c.model)))
    name = pick(rng, [n for n in ["axis", "perm", "foo", "", "kernel_shape", "to", "alpha", "mode",
                                  "\u202e", "a" * 300] if n not in known])
    atype = pick(rng, [A.INT, A.FLOAT, A.STRING, A.INTS])
    node.attribute.append(_make(name, atype, _bad_value(rng, atype, None)))
    c.note(f"{node.op_type} '{node.name}': unknown attribute {name[:40]!r} added")

