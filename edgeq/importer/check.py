"""What every model passes before any converter runs, so a malformed file ends as one
line naming the node, what is wrong and how to fix it, never as a traceback.

- the opset and IR version are ones this onnx package knows;
- each node, against its op's ONNX schema at the model's opset: a standard domain, an op
  edgeq converts, input and output counts, no empty required input, attribute names the
  op defines, of the type it defines, the required ones present, each once;
  strides, dilations, kernel sizes and groups positive;
- tensor names: graph inputs and outputs listed once, every tensor written once (by one
  node, or as a graph input or an initializer);
- every stored tensor readable and no larger than it says (onnx_import_tensors).

The converters then only meet rank- and shape-dependent problems, which they check
against the shapes they know.
"""
from __future__ import annotations

import onnx
from onnx import AttributeProto

from edgeq.errors import EdgeqError
from edgeq.errors import shown as _shown
from edgeq.importer.tensors import all_tensors, check_tensor

REPAIR = "repair or re-export the model (onnx.checker.check_model(model, full_check=True) names the problem too)"
_POSITIVE = ("strides", "dilations", "kernel_shape", "group")


def where(node: onnx.NodeProto) -> str:
    return f"{_shown(node.op_type)} node '{_shown(node.name)}'"


def default_opset(proto: onnx.ModelProto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def check_versions(proto: onnx.ModelProto) -> None:
    newest_ir, newest_opset = onnx.IR_VERSION, onnx.defs.onnx_opset_version()
    if proto.ir_version > newest_ir:
        raise EdgeqError(f"the model has IR version {proto.ir_version}; the installed onnx {onnx.__version__} "
                         f"reads up to {newest_ir}", "export with an older onnx, or upgrade onnx")
    versions = {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")}
    if len(versions) > 1:
        raise EdgeqError(f"the model imports the ONNX opset twice, as versions {sorted(versions)}", REPAIR)
    opset = default_opset(proto)
    if not 1 <= opset <= newest_opset:
        what = "no ONNX opset" if not versions else f"ONNX opset {opset}"
        raise EdgeqError(f"the model declares {what}; the installed onnx {onnx.__version__} knows opsets 1 to "
                         f"{newest_opset}", "export with opset_version=13 or newer (torch.onnx.export)")


def check_tensors(proto: onnx.ModelProto) -> None:
    for t in all_tensors(proto):
        check_tensor(t, "tensor")


def check_graph(proto: onnx.ModelProto, supported: set[str], unsupported) -> None:
    """Every op supported, then nodes against their schemas, then who writes which tensor.
    `unsupported(nodes)` raises the importer's unsupported-op error for all the nodes whose
    op edgeq does not convert, at once (it lists what is supported)."""
    g, opset = proto.graph, default_opset(proto)
    missing = [n for n in g.node if n.domain not in ("", "ai.onnx") or n.op_type not in supported]
    if missing:
        unsupported(missing)
    for node in g.node:
        check_node(node, opset)
    _check_names(g)


def check_node(node: onnx.NodeProto, opset: int) -> None:
    w = where(node)
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        raise EdgeqError(f"{w}: {_shown(node.op_type)} does not exist in ONNX opset {opset}",
                         "export with the opset that introduced it, or newer") from None
    n_in, n_out = len(node.input), len(node.output)
    if not schema.min_input <= n_in <= schema.max_input:
        raise EdgeqError(f"{w} has {n_in} inputs; {node.op_type} takes {_count(schema.min_input, schema.max_input)}",
                         REPAIR)
    if not schema.min_output <= n_out <= schema.max_output or not node.output[0]:
        raise EdgeqError(f"{w} has {n_out} outputs{' (the first unnamed)' if n_out and not node.output[0] else ''}; "
                         f"{node.op_type} gives {_count(schema.min_output, schema.max_output)}", REPAIR)
    for i, formal in enumerate(schema.inputs):
        many = formal.option == onnx.defs.OpSchema.FormalParameterOption.Variadic
        given = node.input[i:] if many else node.input[i:i + 1]
        if formal.option != onnx.defs.OpSchema.FormalParameterOption.Optional and "" in given:
            raise EdgeqError(f"{w}: required input {i} ({formal.name}) is empty", REPAIR)
    _check_attributes(node, schema, w)


def _count(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo} or more" if hi >= 2**31 - 1 else f"{lo} to {hi}"


def _check_attributes(node, schema, w: str) -> None:
    seen: set[str] = set()
    for a in node.attribute:
        name = _shown(a.name)
        if a.name in seen:
            raise EdgeqError(f"{w} sets attribute '{name}' twice", REPAIR)
        seen.add(a.name)
        if a.ref_attr_name:
            raise EdgeqError(f"{w}: attribute '{name}' refers to a function attribute outside a function", REPAIR)
        declared = schema.attributes.get(a.name)
        if declared is None:
            raise EdgeqError(f"{w} has attribute '{name}', which {node.op_type} does not define",
                             "remove it from the node (onnxruntime rejects it too)")
        if a.type != declared.type:
            raise EdgeqError(f"{w}: attribute '{name}' is {_type(a.type)}, {node.op_type} defines it as "
                             f"{_type(declared.type)}", REPAIR)
        if a.name in _POSITIVE and any(v <= 0 for v in ([a.i] if a.type == AttributeProto.INT else a.ints)):
            shown = a.i if a.type == AttributeProto.INT else list(a.ints)
            raise EdgeqError(f"{w}: {a.name} {shown} must be positive", REPAIR)
    for name, declared in schema.attributes.items():
        if declared.required and name not in seen:
            raise EdgeqError(f"{w} lacks the required attribute '{name}'", REPAIR)


def _type(t: int) -> str:
    try:
        return AttributeProto.AttributeType.Name(t)
    except ValueError:
        return f"type {t}"


def _check_names(g: onnx.GraphProto) -> None:
    """Graph inputs and outputs listed once; each tensor written by one node or given once."""
    given: dict[str, str] = {}  # tensor -> what defines it, as the error names it
    for i in g.input:
        if not i.name:
            raise EdgeqError("a graph input has no name", REPAIR)
        if i.name in given:
            raise EdgeqError(f"graph input '{_shown(i.name)}' is listed twice", REPAIR)
        given[i.name] = "the graph input"
    inits = [t.name for t in g.initializer] + [sp.values.name for sp in g.sparse_initializer]
    for name in inits:
        if given.get(name) == "an initializer":
            raise EdgeqError(f"initializer '{_shown(name)}' is defined twice", REPAIR)
        given[name] = "an initializer"  # an initializer may also be listed as an input (IR 4+)
    for node in g.node:
        for o in node.output:
            if not o:
                continue
            if o in given:
                raise EdgeqError(f"{where(node)} writes tensor '{_shown(o)}', which {given[o]} already defines",
                                 "give every node output its own name")
            given[o] = where(node)
    outs = [o.name for o in g.output]
    if any(not o for o in outs):
        raise EdgeqError("a graph output has no name", REPAIR)
    dup = sorted({o for o in outs if outs.count(o) > 1})
    if dup:
        raise EdgeqError(f"graph outputs {[_shown(d) for d in dup]} are listed twice", "list each output once")
