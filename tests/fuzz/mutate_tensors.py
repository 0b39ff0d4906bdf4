"""Tensor mutations: declared shapes and dtypes, initializer bytes/dims/values, sizes that
promise gigabytes, Constant nodes and sparse initializers."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.fuzz.case import (BAD_DIMS, BAD_FLOATS, BAD_INTS, Case, NotApplicable, chance, graph_inputs,
                             mutation, pick)

ODD_DTYPES = [0, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL,
              TensorProto.STRING, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16,
              TensorProto.COMPLEX64, TensorProto.FLOAT8E4M3FN, TensorProto.INT4, 999, -3]


def _inits(c: Case, min_size: int = 0) -> list[TensorProto]:
    return [t for t in c.model.graph.initializer if int(np.prod(t.dims, dtype=object)) >= min_size]


@mutation("shape_dim")
def shape_dim(c: Case, rng) -> None:
    """A declared input/output dim: negative, zero, huge, symbolic, cleared; or a dim added
    or dropped; or the shape removed."""
    g = c.model.graph
    vis = graph_inputs(c.model) * 3 + list(g.output) + list(g.value_info)
    vi = pick(rng, vis)
    shape = vi.type.tensor_type.shape
    what = int(rng.integers(6))
    if what == 0 or not shape.dim:
        vi.type.tensor_type.ClearField("shape")
        c.note(f"'{vi.name}': shape removed")
        return
    d = shape.dim[int(rng.integers(len(shape.dim)))]
    if what == 1:
        d.dim_param = pick(rng, ["N", "", "batch", "?", "-1"])
        c.note(f"'{vi.name}': dim -> symbolic {d.dim_param!r}")
    elif what == 2:
        d.Clear()
        c.note(f"'{vi.name}': dim cleared (no value, no name)")
    elif what == 3:
        shape.dim.add().dim_value = int(pick(rng, [1, 2, 3]))
        c.note(f"'{vi.name}': dim added")
    elif what == 4:
        del shape.dim[int(rng.integers(len(shape.dim)))]
        c.note(f"'{vi.name}': dim dropped")
    else:
        d.dim_value = int(pick(rng, BAD_DIMS))
        c.note(f"'{vi.name}': dim -> {d.dim_value}")


@mutation("input_dtype")
def input_dtype(c: Case, rng) -> None:
    vi = pick(rng, graph_inputs(c.model) + list(c.model.graph.output))
    if chance(rng, 0.15):
        vi.type.Clear()
        if chance(rng, 0.5):
            vi.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
        c.note(f"'{vi.name}': type is not a tensor")
        return
    vi.type.tensor_type.elem_type = int(pick(rng, ODD_DTYPES))
    c.note(f"'{vi.name}': elem_type -> {vi.type.tensor_type.elem_type}")


def _data_fields(t: TensorProto) -> list[str]:
    return [f for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "string_data")
            if getattr(t, f)]


@mutation("init_data")
def init_data(c: Case, rng) -> None:
    """Initializer bytes truncated, padded, moved to a typed field with the wrong count, doubled
    up (raw and typed), or removed."""
    t = pick(rng, _inits(c))
    what = int(rng.integers(5))
    if what == 0 and t.raw_data:
        k = int(rng.integers(len(t.raw_data)))
        t.raw_data = t.raw_data[:k]
        c.note(f"initializer '{t.name}': raw_data truncated to {k} bytes")
    elif what == 1 and t.raw_data:
        t.raw_data = t.raw_data + bytes(int(rng.integers(1, 9)))
        c.note(f"initializer '{t.name}': raw_data padded")
    elif what == 2:
        n = max(int(np.prod(t.dims, dtype=np.int64)) + int(rng.integers(-2, 3)), 0)
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.float_data.extend([1.0] * n)
        c.note(f"initializer '{t.name}': {n} values in float_data")
    elif what == 3 and t.raw_data:
        t.float_data.extend([1.0, 2.0])
        c.note(f"initializer '{t.name}': raw_data and float_data both set")
    else:
        for f in _data_fields(t):
            t.ClearField(f)
        c.note(f"initializer '{t.name}': data removed")


@mutation("init_dtype")
def init_dtype(c: Case, rng) -> None:
    t = pick(rng, _inits(c))
    old = t.data_type
    t.data_type = int(pick(rng, [d for d in ODD_DTYPES + [TensorProto.FLOAT] if d != old]))
    c.note(f"initializer '{t.name}': data_type {old} -> {t.data_type}, bytes kept")


@mutation("init_dims")
def init_dims(c: Case, rng) -> None:
    """Dims changed: a dim of 1 added, dims permuted or dropped, one dim negative, zero or huge."""
    t = pick(rng, _inits(c))
    dims = list(t.dims)
    what = int(rng.integers(5))
    if what == 0:
        dims.insert(int(rng.integers(len(dims) + 1)), 1)
    elif what == 1 and len(dims) > 1:
        dims = list(rng.permutation(dims))
    elif what == 2 and dims:
        del dims[int(rng.integers(len(dims)))]
    elif dims:
        dims[int(rng.integers(len(dims)))] = int(pick(rng, BAD_DIMS))
    else:
        dims = [int(pick(rng, BAD_DIMS))]
    t.dims[:] = [int(d) for d in dims]
    c.note(f"initializer '{t.name}': dims -> {dims}")


@mutation("init_values")
def init_values(c: Case, rng) -> None:
    """Valid shape and dtype, hostile values: NaN/Inf/huge floats, edge integers (a Reshape
    target, a pad, an axis or a slice bound that is far out of range)."""
    t = pick(rng, _inits(c, min_size=1))
    try:
        a = numpy_helper.to_array(t).copy()
    except Exception:  # noqa: BLE001
        raise NotApplicable("unreadable initializer") from None
    flat = a.reshape(-1)
    k = int(rng.integers(1, flat.size + 1)) if chance(rng, 0.5) else 1
    idx = rng.choice(flat.size, size=min(k, flat.size), replace=False)
    if np.issubdtype(a.dtype, np.floating):
        flat[idx] = float(pick(rng, BAD_FLOATS))
    elif np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        flat[idx] = int(np.clip(pick(rng, BAD_INTS), info.min, info.max))
    else:
        raise NotApplicable("non-numeric initializer")
    t.CopyFrom(numpy_helper.from_array(flat.reshape(a.shape), t.name))
    c.note(f"initializer '{t.name}': {len(idx)} value(s) -> {flat[idx[0]]}")


def _feeding_input(c: Case, rng) -> tuple[str, str]:
    """A graph input and a fresh name: the input is routed through a new node whose
    output replaces it for every reader."""
    x = pick(rng, graph_inputs(c.model)).name
    new = f"{x}__bombed"
    for n in c.model.graph.node:
        n.input[:] = [new if i == x else i for i in n.input]
    return x, new


def _const(c: Case, name: str, value: np.ndarray) -> str:
    c.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


@mutation("huge_declared")
def huge_declared(c: Case, rng) -> None:
    """Sizes that would need gigabytes: an input or weight declared huge without the data, or a
    constant subgraph (ConstantOfShape, Expand, Tile, Range, Pad, Reshape) that expands to one."""
    g = c.model.graph
    what = int(rng.integers(8))
    big = int(pick(rng, [2**16, 2**20, 2**31, 2**40]))
    if what == 0:
        vi = pick(rng, graph_inputs(c.model))
        dims = vi.type.tensor_type.shape.dim
        for d in dims[-2:] if len(dims) > 2 else dims:
            d.dim_value = big
        c.note(f"input '{vi.name}': last dims -> {big}")
        return
    if what == 1:
        t = pick(rng, _inits(c))
        t.dims[:] = [big, big] + list(t.dims)[2:]
        c.note(f"initializer '{t.name}': dims -> {list(t.dims)} (data unchanged)")
        return
    x, y = _feeding_input(c, rng)
    bomb = "bomb"
    if what == 2:
        shp = _const(c, "bomb_shape", np.array([big, big], np.int64))
        g.node.append(helper.make_node("ConstantOfShape", [shp], [bomb], name="bomb_cos"))
    elif what == 3:
        one = _const(c, "bomb_one", np.ones((1, 1), np.float32))
        shp = _const(c, "bomb_shape", np.array([big, big], np.int64))
        g.node.append(helper.make_node("Expand", [one, shp], [bomb], name="bomb_expand"))
    elif what == 4:
        one = _const(c, "bomb_one", np.ones((2, 2), np.float32))
        reps = _const(c, "bomb_reps", np.array([big, big], np.int64))
        g.node.append(helper.make_node("Tile", [one, reps], [bomb], name="bomb_tile"))
    elif what == 5:
        lo, hi, st = (_const(c, f"bomb_{k}", np.array(v, np.float32)) for k, v in
                      (("start", 0), ("limit", float(big) * big), ("delta", 1)))
        g.node.append(helper.make_node("Range", [lo, hi, st], [bomb], name="bomb_range"))
    elif what == 6:
        one = _const(c, "bomb_one", np.ones((1, 1), np.float32))
        pads = _const(c, "bomb_pads", np.array([0, 0, big, big], np.int64))
        g.node.append(helper.make_node("Pad", [one, pads], [bomb], name="bomb_pad"))
    else:
        one = _const(c, "bomb_one", np.ones((1, 1), np.float32))
        shp = _const(c, "bomb_shape", np.array([big, -1, big], np.int64))
        g.node.append(helper.make_node("Reshape", [one, shp], [bomb], name="bomb_reshape"))
    g.node.append(helper.make_node("Add", [x, bomb], [y], name="bomb_add"))
    c.note(f"input '{x}' goes through Add with a constant of {g.node[-2].op_type} ({big})")


@mutation("constant_node")
def constant_node(c: Case, rng) -> None:
    """A Constant node with no value, two values, a sparse/string value, or a tensor whose
    dims and data disagree; placed where an initializer was."""
    g = c.model.graph
    t = pick(rng, _inits(c))
    a = numpy_helper.to_array(t) if t.data_type else np.zeros(1, np.float32)
    what = int(rng.integers(6))
    tensor = numpy_helper.from_array(np.asarray(a), "v")
    if what == 0:
        attrs = {}
    elif what == 1:
        attrs = {"value": tensor, "value_float": 1.0}
    elif what == 2:
        attrs = {"value_string": "abc"}
    elif what == 3:
        attrs = {"value_strings": ["a", "b"]}
    elif what == 4:
        tensor.dims[:] = list(tensor.dims) + [2]
        attrs = {"value": tensor}
    else:
        sp = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
                                       helper.make_tensor("i", TensorProto.INT64, [1], [int(pick(rng, BAD_INTS))]),
                                       [4])
        attrs = {"sparse_value": sp}
    g.initializer.remove(t)
    g.node.insert(0, helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", **attrs))
    c.note(f"initializer '{t.name}' -> Constant node with {sorted(attrs) or 'no attributes'}")


@mutation("sparse_init")
def sparse_init(c: Case, rng) -> None:
    """An initializer stored sparse: correct, or with indices out of range, negative, of the
    wrong count or rank, or a dense shape that does not fit."""
    g = c.model.graph
    t = pick(rng, [t for t in _inits(c, min_size=1) if t.data_type == TensorProto.FLOAT])
    a = numpy_helper.to_array(t).reshape(-1)
    idx = np.arange(a.size, dtype=np.int64)
    dims = list(t.dims)
    what = int(rng.integers(6))
    if what == 1:
        idx[-1] = int(pick(rng, [a.size, 2**40, -1, -2**62]))
    elif what == 2:
        idx = idx[:-1] if idx.size > 1 else np.array([0, 0], np.int64)
    elif what == 3:
        idx = np.zeros((a.size, len(dims) + 1), np.int64)
    elif what == 4:
        dims = [int(pick(rng, BAD_DIMS))] + dims[1:]
    elif what == 5:
        idx = idx[::-1].copy()  # unsorted (the spec asks for sorted indices)
    values = numpy_helper.from_array(a, t.name)
    sp = helper.make_sparse_tensor(values, numpy_helper.from_array(idx, f"{t.name}_idx"), dims)
    g.initializer.remove(t)
    g.sparse_initializer.append(sp)
    c.note(f"initializer '{t.name}' stored sparse (variant {what})")
    if what == 0:
        c.expect = "valid"

