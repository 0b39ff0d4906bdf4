"""ONNX file -> canonical float graph (docs/float_graph.md).

`import_onnx` walks the ONNX nodes in topological order keeping two worlds apart:

- known constants (initializers, Constant nodes, and everything computed from them,
  including `Shape` of any tensor, since shapes are static here) live in numpy and are
  evaluated on the spot (`onnx_import_fold`); they enter the graph only as operands of
  real ops;
- activations get a canonical node (`onnx_import_ops`) and a static shape computed by
  our own shape functions (`onnx_import_shapes`), so nothing depends on the file's
  value_info being present or right. (ONNX's own shape inference is deliberately not
  used: for pooling with ceil_mode it disagrees with what onnxruntime and PyTorch
  compute, and those are the numbers the model was trained with.)

Every user-facing failure (not a model file, missing external data, unsupported op,
dynamic dim without --input-shape) is an EdgeqError with a fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node, Tensor
from edgeq.onnx_import_fold import fold_node
from edgeq.onnx_import_shapes import infer_shape

MIN_OPSET = 13


def import_onnx(model: str | Path | onnx.ModelProto,
                input_shapes: dict[str, tuple] | None = None) -> Graph:
    """Read an ONNX model (path or ModelProto) into the canonical float graph.

    `input_shapes` pins dynamic input dims, e.g. {"input": (1, 3, 32, 32)}.
    """
    proto = _load(model)
    proto = _normalize_opset(proto)
    if proto.functions:
        from onnx import inliner
        proto = inliner.inline_local_functions(proto)
    return _Importer(proto, input_shapes or {}).run()


# ---- loading --------------------------------------------------------------------------

def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise EdgeqError(f"model file {path} does not exist", "give the path of an .onnx file")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except FileNotFoundError as e:
        raise EdgeqError(f"{path}: external weight file missing ({e.filename or e})",
                         "keep the .onnx file next to its external data file(s)") from None
    except Exception as e:  # noqa: BLE001 - protobuf raises several types on bad bytes
        raise EdgeqError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})",
                         "export the model again with torch.onnx.export and check the file is complete") from None
    # Random bytes sometimes parse as an almost empty ModelProto: reject those too.
    if proto.ir_version <= 0 or len(proto.graph.node) == 0 or not proto.graph.output:
        raise EdgeqError(f"{path} is not an ONNX model (no graph found)",
                         "give an .onnx file exported with torch.onnx.export")
    return proto


def _default_opset(proto: onnx.ModelProto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def _normalize_opset(proto: onnx.ModelProto) -> onnx.ModelProto:
    ver = _default_opset(proto)
    if ver >= MIN_OPSET:
        return proto
    try:
        from onnx import version_converter
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as e:  # noqa: BLE001
        raise EdgeqError(f"model uses ONNX opset {ver}; edgeq needs {MIN_OPSET}+ and converting failed ({e})",
                         f"export with opset_version={MIN_OPSET} or newer") from None


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
        self.opset = _default_opset(proto)
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
            raise EdgeqError(f"{node.op_type} node '{node.name}': {what} ('{name}') is computed at run time, "
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
        return self.g.add_const(self.fresh(hint or "const"), np.asarray(data, dtype=dtype))

    def ref(self, name: str) -> str:
        """Graph name for an operand: a constant enters the graph as a float32 tensor."""
        if name in self.values:
            if name not in self.const_names:
                self.const_names[name] = self.add_const(name, self.values[name])
            return self.const_names[name]
        if name not in self.g.tensors:
            raise EdgeqError(f"tensor '{name}' is used before it is defined",
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
            raise EdgeqError(f"tensor '{output}' is produced twice", "check the model with onnx.checker")
        shapes = [self.g.tensors[i].shape for i in inputs]
        try:
            shape = infer_shape(op, shapes, attrs)
        except (ValueError, IndexError) as e:
            raise EdgeqError(f"{op} node '{name}': inconsistent shapes {shapes} ({e})",
                             "check the model with onnx.shape_inference") from None
        if any(d <= 0 for d in shape):
            raise EdgeqError(f"{op} node '{name}' would produce an empty tensor of shape {shape}",
                             "check the input shape (--input-shape) against what the model expects")
        self.g.add_tensor(Tensor(output, tuple(int(d) for d in shape), "float32"))
        self.g.nodes.append(Node(op, self.node_name(name or op), list(inputs), [output], attrs))
        return output

    # -- driver
    def run(self) -> Graph:
        gp = self.proto.graph
        for init in gp.initializer:
            self.values[init.name] = _to_array(init)
        for sp in gp.sparse_initializer:
            self.values[sp.values.name] = _sparse_to_dense(sp)
        self._inputs(gp)
        from edgeq.onnx_import_ops import CONVERTERS
        for idx, node in enumerate(_toposorted(gp, set(self.values) | set(self.g.inputs))):
            if not node.name:
                node.name = f"{node.op_type}_{idx}"
            self._node(node, CONVERTERS)
        self._outputs(gp)
        self.g.prune()
        from edgeq.onnx_import_patterns import canonicalize
        canonicalize(self.g)
        self.g.meta["onnx"] = {"producer": f"{self.proto.producer_name} {self.proto.producer_version}".strip(),
                               "opset": self.opset,
                               "metadata": {p.key: p.value for p in self.proto.metadata_props}}
        return self.g

    def _inputs(self, gp):
        real = [i for i in gp.input if i.name not in self.values]
        names = [i.name for i in real]
        unknown = set(self.input_shapes) - set(names)
        if unknown:
            raise EdgeqError(f"--input-shape names {sorted(unknown)}, which is not an input of the model",
                             f"use one of the model's inputs: {', '.join(names)}")
        for vi in real:
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                raise EdgeqError(f"input '{vi.name}' is not a tensor", "edgeq compiles models with tensor inputs")
            if tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
                dt = onnx.TensorProto.DataType.Name(tt.elem_type)
                raise EdgeqError(f"input '{vi.name}' has type {dt}; edgeq compiles float models",
                                 "export the model with a float32 input")
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
            elif declared is None or None in declared:
                shown = _dims(declared) if declared is not None else "unknown"
                fix = (f"give --input-shape {vi.name}={_dims(declared)} with each ? set to a number"
                       if declared is not None else
                       f"give --input-shape {vi.name}=NxCxHxW (every dim; the model declares none)")
                raise EdgeqError(f"input '{vi.name}' has a dynamic or unknown shape [{shown}]", fix)
            else:
                shape = tuple(declared)
            if any(d <= 0 for d in shape):
                raise EdgeqError(f"input '{vi.name}' shape {shape} has a non-positive dim", "give positive dims")
            self.g.add_tensor(Tensor(vi.name, tuple(shape), "float32"))
            self.g.inputs.append(vi.name)

    def _node(self, node: onnx.NodeProto, converters):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            _unsupported(node, converters)
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
            outs = fold_node(op, [self.values[i] if i else None for i in ins], attrs)
            if outs is not None:
                for name, v in zip(node.output, outs):
                    if name:
                        self.values[name] = v
                return
        conv = converters.get(op)
        if conv is None:
            _unsupported(node, converters)
        try:
            conv(self, node, ins, attrs)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            # A malformed node (missing attribute, wrong input count): the user's file.
            raise EdgeqError(f"{op} node '{node.name}' cannot be imported ({type(e).__name__}: {e})",
                             "check the model with onnx.checker.check_model(model, full_check=True)") from None

    def _outputs(self, gp):
        for o in gp.output:
            if o.name in self.values:
                raise EdgeqError(f"model output '{o.name}' is a constant (it does not depend on any input)",
                                 "export a model whose outputs depend on its inputs")
            if o.name not in self.g.tensors:
                raise EdgeqError(f"model output '{o.name}' is never produced", "check the model with onnx.checker")
            self.g.outputs.append(o.name)


def _dims(declared: list[int | None]) -> str:
    """A declared shape as --input-shape writes it, unknown dims as `?`: 1x3x?x?."""
    return "x".join("?" if d is None else str(d) for d in declared)


def _to_array(t: onnx.TensorProto) -> np.ndarray:
    try:
        return numpy_helper.to_array(t)
    except FileNotFoundError as e:
        raise EdgeqError(f"external data for '{t.name}' not found ({e})",
                         "keep the .onnx file next to its external data file(s)") from None


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
            raise EdgeqError(f"{n.op_type} node '{n.name}' reads {missing}, which nothing produces (or a cycle)",
                             "check the model with onnx.checker.check_model")
        nodes = rest
    return done


def _sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    vals = numpy_helper.to_array(sp.values)
    idx = numpy_helper.to_array(sp.indices)
    dense = np.zeros(int(np.prod(sp.dims)), dtype=vals.dtype)
    if idx.ndim == 2:  # [NNZ, rank] coordinates
        idx = np.ravel_multi_index(idx.T, tuple(sp.dims))
    dense[idx] = vals
    return dense.reshape(tuple(sp.dims))


def _unsupported(node, converters):
    supported = sorted(set(converters) | {"Constant", "Shape", "Size"})
    dom = f" (domain '{node.domain}')" if node.domain not in ("", "ai.onnx") else ""
    raise EdgeqError(f"unsupported op {node.op_type}{dom} in node '{node.name}'",
                     "replace it in the model before export; supported ops: " + ", ".join(supported))
