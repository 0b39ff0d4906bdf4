"""edgeq graphs <-> ONNX files, losslessly, for float and quantized graphs.

    model = graph_to_onnx(graph); save_graph(graph, "model.q.onnx"); g = load_graph(path)

How a graph is written (so Netron and onnxruntime open it):

- constants are initializers; activations get value_info with their static shapes;
- canonical float ops become real ONNX ops (opset 17): `kernel` -> `kernel_shape`,
  Clip bounds / Reshape shape / Pad pads / Gather indices / Pow exponent become small input initializers, Gemm gets
  transB=1; a fused `act_min`/`act_max` becomes a Clip node after its producer marked
  `edgeq.fused` (node metadata), so onnxruntime computes the same function;
- `ai.edgeq` ops keep their attributes as ONNX attributes (int/float/ints/floats/str);
- what ONNX cannot say exactly is kept in JSON metadata: node metadata `edgeq.attrs`
  (the canonical attributes when their ONNX form differs, e.g. float64 values that
  float32 attributes would round), model metadata `edgeq.meta` (Graph.meta),
  `edgeq.aux` (names of helper initializers to drop on load), node metadata `edgeq.op` (the
  canonical op of a node written as another ONNX op: ResizeBilinear as Resize);
- QParams: GraphProto.quantization_annotation with SCALE_TENSOR / ZERO_POINT_TENSOR
  initializers (float64 / int64), plus keys EDGEQ_BITS and EDGEQ_AXIS whose values are
  the numbers themselves.

`load_graph` reverses all of it for files edgeq wrote (model metadata `edgeq.format`);
any other ONNX file goes through `import_onnx`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeq.errors import EdgeqError
from edgeq.importer.load import import_onnx
from edgeq.ir import QDOMAIN, Graph, Node, QParams, Tensor
from edgeq.ops import FLOAT_OPS

OPSET = 17
IR_VERSION = 10      # node metadata_props need IR 10; onnxruntime 1.31 loads it
FORMAT_KEY = "edgeq.format"
FORMAT = "edgeq-graph-1"
_ATTRS_KEY, _FUSED_KEY, _OP_KEY = "edgeq.attrs", "edgeq.fused", "edgeq.op"


# ---- JSON with numpy arrays kept as arrays ------------------------------------------------

def _enc(o: Any):
    if isinstance(o, np.ndarray):
        return {"__ndarray__": o.tolist(), "dtype": o.dtype.name, "shape": list(o.shape)}
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return {"__float__": repr(o)}
    if isinstance(o, dict):
        return {str(k): _enc(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_enc(v) for v in o] if isinstance(o, list) else {"__tuple__": [_enc(v) for v in o]}
    if isinstance(o, QParams):
        return {"__qparams__": _enc(o.to_dict())}
    if isinstance(o, (set, frozenset)):
        return [_enc(v) for v in sorted(o, key=repr)]
    if o is None or isinstance(o, (str, int, float, bool)):
        return o
    return repr(o)  # something only a report reads; never fail a save over it


def _dec(o: Any):
    if isinstance(o, dict):
        if "__ndarray__" in o:
            return np.array(o["__ndarray__"], dtype=o["dtype"]).reshape(o["shape"])
        if "__float__" in o:
            return float(o["__float__"])
        if "__tuple__" in o:
            return tuple(_dec(v) for v in o["__tuple__"])
        if "__qparams__" in o:
            d = _dec(o["__qparams__"])
            return QParams(np.array(d["scale"]), np.array(d["zero_point"]), d["bits"], d["axis"])
        return {k: _dec(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_dec(v) for v in o]
    return o


def dumps(o: Any) -> str:
    return json.dumps(_enc(o), allow_nan=False)


def loads(s: str) -> Any:
    return _dec(json.loads(s))


# ---- attributes ------------------------------------------------------------------------------

def _onnx_attr(key: str, v: Any) -> onnx.AttributeProto | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        v = int(v)
    if isinstance(v, np.ndarray):
        v = v.reshape(-1).tolist()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (list, tuple)):
        v = [x.item() if isinstance(x, np.generic) else x for x in v]
        if not v:
            return helper.make_attribute(key, [], attr_type=onnx.AttributeProto.INTS)
        if all(isinstance(x, (int, bool)) for x in v):
            return helper.make_attribute(key, [int(x) for x in v])
        if all(isinstance(x, (int, float)) for x in v):
            return helper.make_attribute(key, [float(x) for x in v], attr_type=onnx.AttributeProto.FLOATS)
        if all(isinstance(x, str) for x in v):
            return helper.make_attribute(key, v)
        return None
    if isinstance(v, (int, float, str)):
        return helper.make_attribute(key, v)
    return None


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _attr_value(a: onnx.AttributeProto) -> Any:
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def _set_meta(proto, key: str, value: str) -> None:
    e = proto.metadata_props.add()
    e.key, e.value = key, value


def _meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


# ---- writing -----------------------------------------------------------------------------

class _Writer:
    def __init__(self, graph: Graph):
        self.g = graph
        self.inits: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.aux: list[str] = []
        self.used = set(graph.tensors) | {o for n in graph.nodes for o in n.outputs}

    def aux_name(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        self.aux.append(name)
        return name

    def aux_init(self, base: str, value: np.ndarray) -> str:
        name = self.aux_name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, node: Node) -> None:
        if node.domain:
            self._custom(node)
        else:
            self._standard(node)

    def _custom(self, node: Node) -> None:
        attrs, exact = [], True
        for k, v in node.attrs.items():
            a = _onnx_attr(k, v)
            if a is None or not _same(_attr_value(a), v):
                exact = False
            if a is not None:
                attrs.append(a)
        n = helper.make_node(node.op, node.inputs, node.outputs, name=node.name, domain=node.domain)
        n.attribute.extend(attrs)
        if not exact:
            _set_meta(n, _ATTRS_KEY, dumps(node.attrs))
        self.nodes.append(n)

    def _standard(self, node: Node) -> None:
        op, a = node.op, node.attrs
        ins, out = list(node.inputs), node.outputs[0]
        fused = "act_min" in a or "act_max" in a
        y = self.aux_name(f"{out}/prefuse") if fused else out
        attrs: dict[str, Any] = {}
        if op == "Conv":
            attrs = {"kernel_shape": list(self.g.tensors[ins[1]].shape[2:]), "strides": a["strides"],
                     "pads": a["pads"], "dilations": a["dilations"], "group": a["group"]}
        elif op == "Gemm":
            attrs = {"transB": 1}
        elif op in ("MaxPool", "AveragePool"):
            attrs = {"kernel_shape": a["kernel"], "strides": a["strides"], "pads": a["pads"]}
            if op == "MaxPool":
                attrs["dilations"] = a.get("dilations", [1, 1])
            else:
                attrs["count_include_pad"] = a["count_include_pad"]
        elif op == "Clip":
            ins += [self._bound(a.get("min", -math.inf), f"{node.name}/min"),
                    self._bound(a.get("max", math.inf), f"{node.name}/max")]
        elif op == "Reshape":
            ins.append(self.aux_init(f"{node.name}/shape", np.array(a["shape"], np.int64)))
        elif op == "Pad":
            ins += [self.aux_init(f"{node.name}/pads", np.array(a["pads"], np.int64)),
                    self.aux_init(f"{node.name}/value", np.array(a.get("value", 0.0), np.float32))]
        elif op == "ResizeBilinear":  # sizes (exact); onnxruntime derives the same scales from them
            shape = self.g.tensors[ins[0]].shape
            ins += ["", "", self.aux_init(f"{node.name}/sizes", np.array(list(shape[:2]) + list(a["sizes"]), np.int64))]
            op, attrs = "Resize", {"mode": "linear",
                                   "coordinate_transformation_mode": a["coordinate_transformation_mode"]}
        elif op == "Pow":  # ONNX takes the exponent as an input
            ins.append(self.aux_init(f"{node.name}/exponent", np.array(a["exponent"], np.float32)))
        elif op == "Gather":
            ins.append(self.aux_init(f"{node.name}/indices", np.array(a["indices"], np.int64)))
            attrs = {"axis": a["axis"]}
        else:  # only attributes ONNX defines (declared onnx=True): onnxruntime rejects others
            attrs = {at.name: a[at.name] for at in FLOAT_OPS[op].attrs if at.onnx and at.name in a}
        n = helper.make_node(op, ins, [y], name=node.name, **attrs)
        _set_meta(n, _ATTRS_KEY, dumps(a))  # canonical attributes, exact
        if op != node.op:  # written as another ONNX op (ResizeBilinear as Resize)
            _set_meta(n, _OP_KEY, node.op)
        self.nodes.append(n)
        if fused:
            lo, hi = a.get("act_min", -math.inf), a.get("act_max", math.inf)
            c = helper.make_node("Clip", [y, self._bound(lo, f"{node.name}/act_min"),
                                          self._bound(hi, f"{node.name}/act_max")], [out],
                                 name=self.aux_name(f"{node.name}/act"))
            _set_meta(c, _FUSED_KEY, node.name)
            self.nodes.append(c)

    def _bound(self, v: float, base: str) -> str:
        v = float(v)
        return "" if math.isinf(v) else self.aux_init(base, np.array(v, np.float32))


def _value_info(t: Tensor) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(t.name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), list(t.shape))


def graph_to_onnx(graph: Graph) -> onnx.ModelProto:
    w = _Writer(graph)
    for n in graph.nodes:
        w.node(n)
    inits = [numpy_helper.from_array(np.ascontiguousarray(t.data), name)
             for name, t in graph.tensors.items() if t.is_const]
    annotations = []
    for name, t in graph.tensors.items():
        if t.q is None:
            continue
        ann = onnx.TensorAnnotation(tensor_name=name)
        for key, value in (("SCALE_TENSOR", w.aux_init(f"{name}::scale", np.asarray(t.q.scale, np.float64))),
                           ("ZERO_POINT_TENSOR", w.aux_init(f"{name}::zero_point", np.asarray(t.q.zero_point, np.int64))),
                           ("EDGEQ_BITS", str(t.q.bits)),
                           ("EDGEQ_AXIS", "" if t.q.axis is None else str(t.q.axis))):
            e = ann.quant_parameter_tensor_names.add()
            e.key, e.value = key, value
        annotations.append(ann)
    acts = [t for t in graph.tensors.values() if not t.is_const]
    gp = helper.make_graph(
        w.nodes, graph.name, [_value_info(graph.tensors[i]) for i in graph.inputs],
        [_value_info(graph.tensors[o]) for o in graph.outputs], inits + w.inits,
        value_info=[_value_info(t) for t in acts if t.name not in graph.inputs and t.name not in graph.outputs])
    gp.quantization_annotation.extend(annotations)
    opsets = [helper.make_opsetid("", OPSET)]
    domains = sorted({n.domain for n in graph.nodes if n.domain})
    opsets += [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(gp, opset_imports=opsets, producer_name="edgeq")
    model.ir_version = IR_VERSION
    _set_meta(model, FORMAT_KEY, FORMAT)
    _set_meta(model, "edgeq.meta", dumps(graph.meta))
    _set_meta(model, "edgeq.aux", json.dumps(w.aux))
    return model


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Write the graph as ONNX; weights above 2 GB would need external data (not needed
    for edge models, so a clear error instead)."""
    path = Path(path)
    model = graph_to_onnx(graph)
    if model.ByteSize() > 2**31 - 1:
        raise EdgeqError(f"graph {graph.name} is larger than 2 GB", "edge models must be far smaller")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# ---- reading -----------------------------------------------------------------------------

def _elem_np(elem: int) -> str:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name


def onnx_to_graph(model: onnx.ModelProto) -> Graph:
    meta = _meta(model)
    if meta.get(FORMAT_KEY) != FORMAT:
        return import_onnx(model)
    gp = model.graph
    aux = set(json.loads(meta.get("edgeq.aux", "[]")))
    g = Graph(gp.name)
    g.meta = loads(meta.get("edgeq.meta", "{}"))
    for init in gp.initializer:
        if init.name not in aux:
            data = numpy_helper.to_array(init)
            g.tensors[init.name] = Tensor(init.name, tuple(data.shape), data.dtype.name, data)
    for vi in list(gp.input) + list(gp.output) + list(gp.value_info):
        if vi.name in g.tensors:
            continue
        tt = vi.type.tensor_type
        g.tensors[vi.name] = Tensor(vi.name, tuple(d.dim_value for d in tt.shape.dim), _elem_np(tt.elem_type))
    g.inputs = [i.name for i in gp.input]
    g.outputs = [o.name for o in gp.output]
    by_name: dict[str, Node] = {}
    for n in gp.node:
        nm = _meta(n)
        if _FUSED_KEY in nm:  # the Clip that stands for a fused clamp: fold it back
            producer = by_name[nm[_FUSED_KEY]]
            producer.outputs = [n.output[0]]
            continue
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if _ATTRS_KEY in nm:
            attrs = loads(nm[_ATTRS_KEY])
        inputs = list(n.input)
        op = nm.get(_OP_KEY, n.op_type)
        if not n.domain:  # beyond the declared inputs: the helper initializers _Writer added
            inputs = inputs[:int(min(FLOAT_OPS[op].arity()[1], len(inputs)))]
        node = Node(op, n.name, inputs, list(n.output), attrs, n.domain)
        g.nodes.append(node)
        by_name[n.name] = node
    for ann in gp.quantization_annotation:
        kv = {e.key: e.value for e in ann.quant_parameter_tensor_names}
        inits = {i.name: i for i in gp.initializer}
        scale = numpy_helper.to_array(inits[kv["SCALE_TENSOR"]])
        zp = numpy_helper.to_array(inits[kv["ZERO_POINT_TENSOR"]])
        axis = kv.get("EDGEQ_AXIS", "")
        g.tensors[ann.tensor_name].q = QParams(scale, zp, int(kv.get("EDGEQ_BITS", 8)),
                                               None if axis == "" else int(axis))
    return g


def load_graph(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise EdgeqError(f"graph file {path} does not exist", "give a model.float.onnx / model.q.onnx path")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise EdgeqError(f"{path} is not a readable ONNX file ({type(e).__name__})",
                         "compile the model again to rewrite it") from None
    if _meta(model).get(FORMAT_KEY) != FORMAT:
        return import_onnx(path)
    return onnx_to_graph(model)
