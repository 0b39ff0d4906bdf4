"""ONNX file -> canonical float graph (docs/float_graph.md).

`import_onnx` walks the ONNX nodes in topological order keeping two worlds apart:

- known constants (initializers, Constant nodes, and everything computed from them,
  including `Shape` of any tensor, since shapes are static here) live in numpy and are
  evaluated on the spot (`onnx_import_fold`); they enter the graph only as operands of
  real ops;
- activations get a canonical node (`onnx_import_ops`, the import stage's converters) and
  a static shape computed by the op's declared shape rule (edgeq/ops), so nothing depends on the file's
  value_info being present or right. (ONNX's own shape inference is deliberately not
  used: for pooling with ceil_mode it disagrees with what onnxruntime and PyTorch
  compute, and those are the numbers the model was trained with.)

Before any of that, the file passes the checks of `onnx_import_check` (each node against
its op's ONNX schema, who writes which tensor, versions) and `onnx_import_tensors` (stored
bytes match dims, sizes below MAX_ELEMENTS, external data only from inside the model's
folder), so a malformed or hostile file never reaches numpy, torch or onnx's C++ version
converter. Every user-facing failure (not a model file, missing external data, unsupported
op, dynamic dim without --input-shape, a malformed node) is an EdgeqError with a fix.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgeq.importer import converters, convtranspose, rnn, select  # noqa: F401  (register the import stage's converters)
from edgeq.errors import EdgeqError, shown
from edgeq.importer.check import check_graph, check_tensors, check_versions, default_opset
from edgeq.importer.fold import FOLDERS, FoldFailed, fold_node, result_elements
from edgeq.importer.patterns import canonicalize
from edgeq.importer.tensors import MAX_ELEMENTS, dtype_name, element_count, load_external_data, to_array
from edgeq.ir import Graph, Node, Tensor
from edgeq.ops import FLOAT_OPS, REGISTRY, implementations

MIN_OPSET = 13
# Per sample, all activations together (the calibrator's batch budget, so one sample always
# fits a batch) and all inputs together (the data-free calibrator feeds SYNTH_N = 32 of them).
MAX_ACTIVATION_ELEMENTS = 1 << 26
MAX_INPUT_ELEMENTS = 1 << 22


def import_onnx(model: str | Path | onnx.ModelProto,
                input_shapes: dict[str, tuple] | None = None) -> Graph:
    """Read an ONNX model (path or ModelProto) into the canonical float graph.

    `input_shapes` pins dynamic input dims, e.g. {"input": (1, 3, 32, 32)}.
    """
    proto = _load(model)
    check_versions(proto)
    if proto.functions:
        proto = _inline(proto)
    _name_nodes(proto)
    supported = set(REGISTRY.implemented("import")) | set(FOLDERS) | {"Constant", "Shape", "Size"}

    _check_ops(proto, supported)
    # Schemas first: the version converter and every converter below see well-formed nodes.
    check_graph(proto, supported, _unsupported)
    check_tensors(proto)
    _densify(proto)  # the version converter does not see sparse initializers as defined
    if default_opset(proto) < MIN_OPSET:
        proto = _normalize_opset(proto)
        check_graph(proto, supported, _unsupported)
    return _Importer(proto, input_shapes or {}).run()


def _check_ops(proto: onnx.ModelProto, supported: set[str]) -> None:
    """Every node whose op edgeq cannot run, in one error: ops it does not know, and ops it
    only evaluates on constants (FOLDERS without a converter) that meet an activation.
    Which tensors are constant is known before any shape is: initializers, Constant, Shape
    and Size outputs (shapes are static here), and whatever a node computes from constants
    alone. (Sweeps in file order until nothing changes, so an unsorted or broken file gets
    here and the later checks still name its own problem.)"""
    g = proto.graph
    # an initializer listed as an input too is constant
    const = {t.name for t in g.initializer} | {sp.values.name for sp in g.sparse_initializer} | {""}
    changed = True
    while changed:
        changed = False
        for node in g.node:
            if node.output[:1] and node.output[0] not in const and \
                    (node.op_type in ("Constant", "Shape", "Size") or all(i in const for i in node.input)):
                const.update(node.output)
                changed = True
    std = ("", "ai.onnx")
    bad = [n for n in g.node if n.domain not in std or n.op_type not in supported or
           (not implementations("import", n.op_type) and not (n.output[:1] and n.output[0] in const))]
    if bad:
        _unsupported(bad)


# ---- loading --------------------------------------------------------------------------

def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        own = onnx.ModelProto()  # the checks name nodes and densify weights: not in the caller's copy
        own.CopyFrom(model)
        return own
    path = Path(model)
    if not path.is_file():
        raise EdgeqError(f"model file {path} does not exist", "give the path of an .onnx file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types on bad bytes
        raise EdgeqError(f"{path} is not a readable ONNX model ({type(e).__name__}: {shown(str(e), 200)})",
                         "export the model again with torch.onnx.export and check the file is complete") from None
    # Random bytes sometimes parse as an almost empty ModelProto: reject those too.
    if proto.ir_version <= 0 or len(proto.graph.node) == 0 or not proto.graph.output:
        raise EdgeqError(f"{path} is not an ONNX model (no graph found)",
                         "give an .onnx file exported with torch.onnx.export")
    # edgeq reads external weights itself: only inside the model's folder, sizes checked first
    load_external_data(proto, path.parent)
    return proto


def _inline(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import inliner
    try:
        return inliner.inline_local_functions(proto)
    except Exception as e:  # noqa: BLE001 - onnx reports recursion and bad bodies as several types
        raise EdgeqError(f"the model's local functions cannot be inlined ({type(e).__name__}: "
                         f"{shown(str(e).splitlines()[0] if str(e) else '', 200)})",
                         "export without model-local functions, or repair them") from None


def _normalize_opset(proto: onnx.ModelProto) -> onnx.ModelProto:
    ver = default_opset(proto)
    try:
        from onnx import version_converter
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as e:  # noqa: BLE001
        raise EdgeqError(f"model uses ONNX opset {ver}; edgeq needs {MIN_OPSET}+ and converting failed "
                         f"({type(e).__name__}: {shown(str(e).splitlines()[0] if str(e) else '', 200)})",
                         f"export with opset_version={MIN_OPSET} or newer") from None


def _densify(proto: onnx.ModelProto) -> None:
    gp = proto.graph
    for sp in gp.sparse_initializer:
        gp.initializer.append(numpy_helper.from_array(_sparse_to_dense(sp), sp.values.name))
    del gp.sparse_initializer[:]


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Every node gets a name before any check, so each error can name its node."""
    for idx, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{idx}"


def attr_dict(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


# ---- the importer ----------------------------------------------------------------------

class _Importer:
    def __init__(self, proto: onnx.ModelProto, input_shapes: dict[str, tuple]):
        self.proto = proto
        self.opset = default_opset(proto)
        self.g = Graph(proto.graph.name or "graph")
        self.values: dict[str, np.ndarray] = {}   # known constants by ONNX name
        self.const_names: dict[str, str] = {}     # ONNX constant name -> graph const name
        self.node_names: set[str] = set()
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        # Names the file uses anywhere: tensors we invent must not collide with one that
        # a later ONNX node writes.
        gp = proto.graph
        self.reserved = {n for node in gp.node for n in list(node.input) + list(node.output)}
        self.reserved |= {i.name for i in gp.initializer} | {i.name for i in gp.input}

    # -- accessors used by the converters
    def is_const(self, name: str) -> bool:
        return name in self.values

    def value(self, name: str) -> np.ndarray | None:
        return self.values.get(name) if name else None

    def shape(self, name: str) -> tuple:
        if name in self.values:
            return tuple(self.values[name].shape)
        return self.g.tensors[name].shape

    def need_const(self, name: str, what: str, node) -> np.ndarray:
        v = self.value(name)
        if v is None:
            raise EdgeqError(f"{node.op_type} node '{shown(node.name)}': {what} ('{shown(name)}') is computed at run time, "
                             "but edgeq needs it to be a constant",
                             "export the model with its weights as initializers (do not feed weights as inputs)")
        return v

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.g.tensors or (name in self.reserved and name not in self.values):
            k += 1
            name = f"{base}_{k}"
        return name

    def add_const(self, hint: str, data: np.ndarray, dtype=np.float32) -> str:
        with np.errstate(all="ignore"):  # float64 -> float32 may overflow to inf: refused below
            data = np.asarray(data, dtype=dtype)
        if not np.all(np.isfinite(data)):
            raise EdgeqError(f"constant '{shown(hint)}' holds NaN or infinite values",
                             "the model's weights are broken: retrain or re-export it")
        return self.g.add_const(self.fresh(hint or "const"), data)

    def ref(self, name: str) -> str:
        """Graph name for an operand: a constant enters the graph as a float32 tensor."""
        if name in self.values:
            if name not in self.const_names:
                self.const_names[name] = self.add_const(name, self.values[name])
            return self.const_names[name]
        if name not in self.g.tensors:
            raise EdgeqError(f"tensor '{shown(name)}' is used before it is defined",
                             "check the model with onnx.checker.check_model")
        return name

    def node_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.node_names:
            name, k = f"{base}_{k}", k + 1
        self.node_names.add(name)
        return name

    def temp(self, hint: str) -> str:
        name = self.fresh(hint)
        self.reserved.add(name)
        return name

    def emit(self, op: str, inputs: list[str], output: str, attrs: dict | None = None,
             name: str = "") -> str:
        """Append a canonical node; its output shape comes from our own shape rules."""
        attrs = attrs or {}
        if output in self.g.tensors:
            raise EdgeqError(f"tensor '{shown(output)}' is produced twice", "check the model with onnx.checker")
        shapes = [self.g.tensors[i].shape for i in inputs]
        decl = FLOAT_OPS[op]
        try:
            shape = decl.shape(shapes, attrs)
        except (ValueError, IndexError) as e:
            raise EdgeqError(f"{op} node '{shown(name)}': inconsistent shapes {shapes} ({e})",
                             "check the model with onnx.shape_inference") from None
        problem = decl.axis_problem(attrs["axis"], len(shapes[0])) if decl.axis else None
        if problem:
            raise EdgeqError(f"{op} node '{shown(name)}': {problem}",
                             "transpose so the op runs over the last axis" if decl.axis == "last"
                             else "check the model with onnx.checker")
        if any(d <= 0 for d in shape):
            raise EdgeqError(f"{op} node '{shown(name)}' would produce an empty tensor of shape {shape}",
                             "check the input shape (--input-shape) against what the model expects")
        element_count(shape, f"the output of {op} node '{shown(name)}'")
        _check_attrs_finite(op, name, attrs)
        self._check_batch_axis(op, inputs, tuple(shape), attrs, name)
        self.g.add_tensor(Tensor(output, tuple(int(d) for d in shape), "float32"))
        self.g.nodes.append(Node(op, self.node_name(name or op), list(inputs), [output], attrs))
        return output

    def _check_batch_axis(self, op: str, inputs: list[str], shape: tuple, attrs: dict, name: str) -> None:
        """Calibration and the integer reference run a batch of samples through the batch-1
        graph along axis 0, so an op that combines tensors must keep axis 0 the batch."""
        if not FLOAT_OPS[op].combines:
            return
        acts = [self.g.tensors[i].shape for i in inputs if not self.g.tensors[i].is_const]
        if (op == "Concat" and attrs["axis"] == 0) or any(len(a) != len(shape) or a[0] != shape[0] for a in acts):
            raise EdgeqError(f"{op} node '{shown(name)}' combines {[tuple(a) for a in acts]} into {shape}, which "
                             "moves or grows the batch axis (axis 0)", "keep axis 0 the batch (size 1) in every "
                             "tensor the node reads, e.g. with Unsqueeze/Reshape before it")

    # -- driver
    def run(self) -> Graph:
        gp = self.proto.graph
        for init in gp.initializer:
            self.values[init.name] = _to_array(init)
        self._inputs(gp)
        for node in _toposorted(gp, set(self.values) | set(self.g.inputs)):
            self._node(node)
        self._outputs(gp)
        self.g.prune()
        _check_budget("the model's activations", sum(t.size for t in self.g.tensors.values() if not t.is_const),
                      MAX_ACTIVATION_ELEMENTS)
        canonicalize(self.g)
        self.g.meta["onnx"] = {"producer": f"{self.proto.producer_name} {self.proto.producer_version}".strip(),
                               "opset": self.opset,
                               "metadata": {p.key: p.value for p in self.proto.metadata_props}}
        return self.g

    def _inputs(self, gp):
        real = [i for i in gp.input if i.name not in self.values]
        names = [i.name for i in real]
        if "" in self.input_shapes:  # --input-shape without NAME=: the model's only input
            if len(names) != 1:
                raise EdgeqError(f"--input-shape gives no input name, and the model has {len(names)} inputs",
                                 f"write NAME=DIMS for each of: {', '.join(shown(n) for n in names)}")
            self.input_shapes[names[0]] = self.input_shapes.pop("")
        unknown = set(self.input_shapes) - set(names)
        if unknown:
            raise EdgeqError(f"--input-shape names {sorted(unknown)}, which is not an input of the model",
                             f"use one of the model's inputs: {', '.join(names)}")
        batch_pinned = []
        for vi in real:
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                raise EdgeqError(f"input '{shown(vi.name)}' is not a tensor", "edgeq compiles models with tensor inputs")
            if tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
                raise EdgeqError(f"input '{shown(vi.name)}' has type {dtype_name(tt.elem_type)}; edgeq compiles "
                                 "float models", "export the model with a float32 input")
            declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                        for d in tt.shape.dim] if tt.HasField("shape") else None
            if vi.name in self.input_shapes:
                shape = self.input_shapes[vi.name]
                if declared is not None and len(declared) != len(shape):
                    raise EdgeqError(f"--input-shape gives {vi.name} rank {len(shape)}, the model declares rank {len(declared)}",
                                     f"give {len(declared)} dims: --input-shape {vi.name}=" + _dims(declared) + " with each ? set")
                if declared and any(d is not None and d != s for d, s in zip(declared, shape)):
                    raise EdgeqError(f"--input-shape {vi.name}={'x'.join(map(str, shape))} contradicts the model's fixed shape {declared}",
                                     "only the model's dynamic dims may be set")
            elif declared is None:
                raise EdgeqError(f"input '{shown(vi.name)}' declares no shape",
                                 f"give --input-shape {vi.name}=1xCxHxW (every dim, batch 1)")
            else:
                if declared and declared[0] is None:
                    # edge deployments run one sample at a time: a dynamic batch axis is 1
                    declared[0] = 1
                    batch_pinned.append(vi.name)
                if None in declared:
                    open_dims = _open_dims(declared)
                    raise EdgeqError(f"input '{shown(vi.name)}' has dynamic dims [{_dims(declared, open_dims)}]",
                                     f"give --input-shape {shown(vi.name)}={_dims(declared, open_dims)} with "
                                     f"{_listed(open_dims.values())} set to {'a number' if len(open_dims) == 1 else 'numbers'}")
                shape = tuple(declared)
            if any(d <= 0 for d in shape):
                raise EdgeqError(f"input '{shown(vi.name)}' shape {shape} has a non-positive dim", "give positive dims")
            if not shape or shape[0] != 1:
                raise EdgeqError(f"input '{shown(vi.name)}' has shape {tuple(shape)}; edgeq reads axis 0 as the batch "
                                 "and compiles one sample at a time (batch 1)",
                                 "export with batch 1 or a dynamic batch axis (compiled as 1); --input-shape takes batch 1")
            element_count(shape, f"input '{shown(vi.name)}'")
            self.g.add_tensor(Tensor(vi.name, tuple(shape), "float32"))
            self.g.inputs.append(vi.name)
        _check_budget("the model's inputs", sum(self.g.tensors[n].size for n in self.g.inputs), MAX_INPUT_ELEMENTS)
        if batch_pinned:
            self.g.meta["import_notes"] = [
                f"dynamic batch axis of {', '.join(repr(shown(n)) for n in batch_pinned)} compiled as batch 1 "
                "(edgeq runs one sample at a time)"]

    def _node(self, node: onnx.NodeProto):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            _unsupported([node])
        attrs = attr_dict(node)
        ins = list(node.input)
        if op == "Constant":
            self.values[node.output[0]] = _constant_value(attrs)
            return
        if op in ("Shape", "Size"):
            shape = self.shape(ins[0])
            if op == "Size":
                self.values[node.output[0]] = np.array(int(np.prod(shape)), np.int64)
            else:
                start, end = attrs.get("start", 0), attrs.get("end", None)
                self.values[node.output[0]] = np.array(shape[start:end], np.int64)
            return
        present = [i for i in ins if i]
        if present and all(i in self.values for i in present):
            vals = [self.values[i] if i else None for i in ins]
            n = result_elements(op, vals, attrs)
            if n > MAX_ELEMENTS:
                raise EdgeqError(f"{op} node '{shown(node.name)}' on constants would compute {n:,} values, "
                                 f"above edgeq's limit of {MAX_ELEMENTS:,}", "check the shapes and sizes it is given")
            try:
                outs = fold_node(op, vals, attrs)
            except FoldFailed as e:
                if not implementations("import", op):
                    raise EdgeqError(f"{op} node '{shown(node.name)}' cannot be evaluated on its constant inputs "
                                     f"({shown(str(e), 200)})", "check the values and shapes it is given") from None
                outs = None  # converted as a run-time op below
            if outs is not None:
                for name, v in zip(node.output, outs):
                    if name:
                        self.values[name] = v
                return
        converters = implementations("import", op)
        if not converters:
            _unsupported([node])
        try:
            with np.errstate(all="ignore"):  # garbage in, NaN/inf out: refused where it becomes a constant
                converters[0].fn(self, node, ins, attrs)
        except (KeyError, IndexError, ValueError, TypeError, ArithmeticError) as e:
            # A malformed node the checks did not foresee: still the user's file.
            raise EdgeqError(f"{op} node '{shown(node.name)}' cannot be imported ({type(e).__name__}: {shown(str(e), 200)})",
                             "check the model with onnx.checker.check_model(model, full_check=True)") from None

    def _outputs(self, gp):
        for o in gp.output:
            if o.name in self.values:
                raise EdgeqError(f"model output '{shown(o.name)}' is a constant (it does not depend on any input)",
                                 "export a model whose outputs depend on its inputs")
            if o.name not in self.g.tensors:
                raise EdgeqError(f"model output '{shown(o.name)}' is never produced", "check the model with onnx.checker")
            self.g.outputs.append(o.name)


def _dims(declared: list[int | None], open_dims: dict[int, str] | None = None) -> str:
    """A declared shape as --input-shape writes it, unknown dims by the name the hint gives
    them (else `?`): 1x3xHxW."""
    open_dims = open_dims or {}
    return "x".join(open_dims.get(i, "?") if d is None else str(d) for i, d in enumerate(declared))


def _listed(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _open_dims(declared: list[int | None]) -> dict[int, str]:
    """Names for the unknown dims of a rank-4 NCHW-like input (H, W; C when that is open),
    else D<axis>: short, shell-safe placeholders the user replaces with numbers."""
    conventional = {4: ("N", "C", "H", "W"), 3: ("N", "C", "L")}.get(len(declared))
    names = {}
    for i, d in enumerate(declared):
        if d is None:
            names[i] = conventional[i] if conventional else f"D{i}"
    return names


def _to_array(t: onnx.TensorProto) -> np.ndarray:
    return to_array(t, "initializer")


def _check_budget(what: str, elements: int, limit: int) -> None:
    if elements > limit:
        raise EdgeqError(f"{what} hold {elements:,} values per sample, above edgeq's limit of {limit:,}",
                         "edge models are far smaller: check the input shape and the file")


def _check_attrs_finite(op: str, name: str, attrs: dict) -> None:
    """Float attributes reach the quantizer's arithmetic: NaN never, inf only as a Clip bound."""
    for key, v in attrs.items():
        if isinstance(v, float) and not math.isfinite(v) and (math.isnan(v) or op != "Clip"):
            raise EdgeqError(f"{op} node '{shown(name)}': attribute {key} is {v}",
                             "give a finite value (re-export the model)")


def _constant_value(attrs: dict) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                    ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dt)
    raise EdgeqError(f"Constant node with attributes {sorted(attrs)} is not supported",
                     "use a tensor-valued Constant")


def _toposorted(gp, known: set[str]) -> list:
    """The nodes in an order where each input is produced first (files usually are)."""
    nodes, done, ready = list(gp.node), [], set(known) | {""}
    while nodes:
        rest = []
        for n in nodes:  # one sweep suffices for an already sorted file
            if all(i in ready for i in n.input):
                done.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(nodes):
            n = rest[0]
            missing = [i for i in n.input if i not in ready]
            raise EdgeqError(f"{shown(n.op_type)} node '{shown(n.name)}' reads {[shown(i) for i in missing]}, which nothing produces "
                             "(or a cycle)",
                             "check the model with onnx.checker.check_model")
        nodes = rest
    return done


def _sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    what = f"sparse initializer '{shown(sp.values.name)}'"
    vals = to_array(sp.values, what).reshape(-1)
    idx = to_array(sp.indices, what + " indices")
    dims = tuple(int(d) for d in sp.dims)
    size = element_count(dims, what)
    rank_ok = (idx.ndim == 1 and idx.shape[0] == vals.size) or \
        (idx.ndim == 2 and idx.shape == (vals.size, len(dims)))
    if not rank_ok or not np.issubdtype(idx.dtype, np.integer):
        raise EdgeqError(f"{what}: indices of shape {idx.shape} do not fit {vals.size} values in dims {list(dims)}",
                         "the file is corrupt: export the model again")
    bound = np.array(dims if idx.ndim == 2 else [size], np.int64)
    if idx.size and (np.any(idx < 0) or np.any(idx >= bound)):
        raise EdgeqError(f"{what}: an index lies outside dims {list(dims)}", "the file is corrupt: export the model again")
    dense = np.zeros(size, dtype=vals.dtype)
    if idx.ndim == 2:  # [NNZ, rank] coordinates
        idx = np.ravel_multi_index(idx.T, dims) if dims else np.zeros(0, np.int64)
    dense[idx] = vals
    return dense.reshape(dims)


NAMES_SHOWN = 5  # node names listed per unsupported op; the rest are counted


def _unsupported(nodes: list) -> None:
    """One error for every node whose op edgeq does not convert, grouped by op (in the
    order the file first uses each), each with its node names."""
    groups: dict[tuple[str, str], list[str]] = {}
    for n in nodes:
        groups.setdefault((n.domain, n.op_type), []).append(f"'{shown(n.name)}'")
    parts = []
    for (domain, op), names in groups.items():
        dom = f" (domain '{shown(domain)}')" if domain not in ("", "ai.onnx") else ""
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        parts.append(f"{shown(op)}{dom} in node{'s' if len(names) > 1 else ''} "
                     f"{', '.join(names[:NAMES_SHOWN])}{more}")
    what = f"unsupported op {parts[0]}" if len(parts) == 1 else f"{len(parts)} unsupported ops: " + "; ".join(parts)
    supported = sorted(set(REGISTRY.implemented("import")) | {"Constant", "Shape", "Size"})
    raise EdgeqError(what, f"replace {'it' if len(parts) == 1 else 'them'} in the model before export; "
                     "supported ops: " + ", ".join(supported))
