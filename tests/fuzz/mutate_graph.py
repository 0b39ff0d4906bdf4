"""Graph mutations: wiring, names, opset and IR version, op types and domains, local
functions, metadata, node order."""
from __future__ import annotations

from onnx import TensorProto, helper

from tests.fuzz.case import (BAD_INTS, HOSTILE_NAMES, Case, NotApplicable, chance, graph_inputs, mutation, pick,
                             rename_tensor, tensor_names)

SUPPORTED_OPS = ["Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Sigmoid", "Tanh", "HardSwish",
                 "HardSigmoid", "LeakyRelu", "Clip", "PRelu", "Add", "Mul", "Sub", "Div", "Concat", "MaxPool",
                 "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Flatten", "Reshape",
                 "Squeeze", "Unsqueeze", "Transpose", "Pad", "Softmax", "Dropout", "Identity", "Cast",
                 "Constant", "Shape", "Size", "Gather", "Slice", "ConstantOfShape", "Expand", "Tile", "Range",
                 "Where", "Equal", "MatMul", "Pow", "ReduceSum"]
OTHER_OPS = ["Erf", "LSTM", "Resize", "If", "Loop", "NonZero", "TopK", "Einsum", "Foo", "", "conv", "Conv\x00",
             "\u202eConv", "a" * 500]


@mutation("wire_dangling")
def wire_dangling(c: Case, rng) -> None:
    node = pick(rng, [n for n in c.model.graph.node if any(n.input)])
    k = pick(rng, [i for i, name in enumerate(node.input) if name])
    node.input[k] = pick(rng, ["missing_tensor", "x ", node.input[k] + "_"])
    c.note(f"{node.op_type} '{node.name}': input {k} -> {node.input[k]!r}, which nothing produces")


@mutation("wire_cycle")
def wire_cycle(c: Case, rng) -> None:
    nodes = list(c.model.graph.node)
    i = int(rng.integers(len(nodes)))
    j = int(rng.integers(i, len(nodes)))
    a, b = nodes[i], nodes[j]
    if not a.input or not b.output:
        raise NotApplicable("no input to rewire")
    k = int(rng.integers(len(a.input)))
    a.input[k] = b.output[0]
    c.note(f"{a.op_type} '{a.name}' input {k} <- output of {b.op_type} '{b.name}' (a cycle)")


@mutation("wire_dup_output")
def wire_dup_output(c: Case, rng) -> None:
    """A tensor written twice: by two nodes, by a node and the graph input or an initializer;
    or a graph output listed twice."""
    g = c.model.graph
    node = pick(rng, g.node)
    what = int(rng.integers(4))
    if what == 0 and len(g.node) > 1:
        other = pick(rng, [n for n in g.node if n is not node and n.output])
        node.output[0] = other.output[0]
    elif what == 1:
        node.output[0] = pick(rng, graph_inputs(c.model)).name
    elif what == 2 and g.initializer:
        node.output[0] = pick(rng, g.initializer).name
    else:
        g.output.append(g.output[int(rng.integers(len(g.output)))])
        c.note(f"graph output '{g.output[-1].name}' listed twice")
        return
    c.note(f"{node.op_type} '{node.name}' now writes '{node.output[0]}', which already exists")


@mutation("wire_unused")
def wire_unused(c: Case, rng) -> None:
    """An extra node nobody reads: a supported op on existing tensors, or an unsupported one."""
    names = tensor_names(c.model)
    op = pick(rng, SUPPORTED_OPS + OTHER_OPS[:6])
    ins = [pick(rng, names) for _ in range(int(rng.integers(0, 4)))]
    c.model.graph.node.append(helper.make_node(op, ins, ["unused_out"], name="unused"))
    c.note(f"unused {op or '(empty op)'} node on {ins}")


@mutation("wire_swap")
def wire_swap(c: Case, rng) -> None:
    """Two inputs exchanged: within one node (Conv x <-> W) or between two nodes."""
    g = c.model.graph
    multi = [n for n in g.node if len(n.input) > 1]
    if multi and chance(rng, 0.6):
        node = pick(rng, multi)
        i, j = rng.choice(len(node.input), 2, replace=False)
        node.input[int(i)], node.input[int(j)] = node.input[int(j)], node.input[int(i)]
        c.note(f"{node.op_type} '{node.name}': inputs {i} and {j} swapped")
        return
    withins = [n for n in g.node if n.input]
    if len(withins) < 2:
        raise NotApplicable("one node")
    a, b = rng.choice(len(withins), 2, replace=False)
    a, b = withins[int(a)], withins[int(b)]
    a.input[0], b.input[0] = b.input[0], a.input[0]
    c.note(f"first inputs of '{a.name}' and '{b.name}' swapped")


@mutation("wire_arity")
def wire_arity(c: Case, rng) -> None:
    """An input or output too few or too many, or an empty (omitted) input in between."""
    node = pick(rng, c.model.graph.node)
    what = int(rng.integers(5))
    if what == 0 and node.input:
        del node.input[-1]
        c.note(f"{node.op_type} '{node.name}': last input removed")
    elif what == 1:
        for _ in range(int(rng.integers(1, 4))):
            node.input.append(pick(rng, tensor_names(c.model) + [""]))
        c.note(f"{node.op_type} '{node.name}': inputs -> {list(node.input)}")
    elif what == 2 and node.input:
        node.input.insert(int(rng.integers(len(node.input) + 1)), "")
        c.note(f"{node.op_type} '{node.name}': empty input inserted")
    elif what == 3:
        node.output.append(pick(rng, ["extra_out", ""]))
        c.note(f"{node.op_type} '{node.name}': extra output")
    else:
        del node.output[:]
        c.note(f"{node.op_type} '{node.name}': outputs removed")


@mutation("wire_graph_io")
def wire_graph_io(c: Case, rng) -> None:
    """Graph outputs and inputs: an output that is an input, an initializer, a missing tensor,
    an intermediate; no outputs; an input removed, repeated, unused or shadowing a weight."""
    g = c.model.graph
    what = int(rng.integers(8))
    if what == 0:
        g.output[0].name = pick(rng, graph_inputs(c.model)).name
    elif what == 1 and g.initializer:
        g.output[0].name = pick(rng, g.initializer).name
    elif what == 2:
        g.output[0].name = pick(rng, ["nowhere", ""])
    elif what == 3:
        out = pick(rng, [o for n in g.node for o in n.output if o])
        g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    elif what == 4:
        del g.output[:]
    elif what == 5:
        vi = pick(rng, graph_inputs(c.model))
        g.input.remove(vi)
    elif what == 6:
        g.input.append(g.input[int(rng.integers(len(g.input)))])
    else:
        if not g.initializer:
            raise NotApplicable("no initializer")
        t = pick(rng, g.initializer)
        g.input.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [1, 2, 3]))
    c.note(f"graph inputs/outputs variant {what}: inputs {[i.name for i in g.input][:4]}, "
           f"outputs {[o.name for o in g.output][:4]}")


@mutation("name_empty")
def name_empty(c: Case, rng) -> None:
    """Node names have no meaning: empty ones must still build. An empty tensor name means an
    omitted input, which changes the model."""
    if chance(rng, 0.6):
        for n in c.model.graph.node:
            if chance(rng, 0.5):
                n.name = ""
        c.expect = "valid"
        c.note("some node names emptied")
    else:
        name = pick(rng, tensor_names(c.model))
        rename_tensor(c.model, name, "")
        c.note(f"tensor '{name}' renamed to ''")


@mutation("name_dup")
def name_dup(c: Case, rng) -> None:
    g = c.model.graph
    if chance(rng, 0.6) and len(g.node) > 1:
        name = g.node[0].name or "n"
        for n in g.node:
            n.name = name
        c.expect = "valid"
        c.note(f"every node named '{name}'")
    else:
        names = tensor_names(c.model)
        if len(names) < 2:
            raise NotApplicable("one tensor")
        a, b = rng.choice(len(names), 2, replace=False)
        rename_tensor(c.model, names[int(a)], names[int(b)])
        c.note(f"tensor '{names[int(a)]}' renamed to the existing '{names[int(b)]}'")


@mutation("name_hostile")
def name_hostile(c: Case, rng) -> None:
    """Node, tensor, input, output and graph names with quotes, newlines, comment closers,
    trigraphs, markup, control and non-ASCII characters, 10 kB: the model means the same."""
    g = c.model.graph
    used = set(tensor_names(c.model))
    what = int(rng.integers(3))
    if what == 0:
        for n in g.node:
            if chance(rng, 0.5):
                n.name = pick(rng, HOSTILE_NAMES)
        c.note("hostile node names")
    elif what == 1:
        g.name = pick(rng, HOSTILE_NAMES)
        c.note(f"graph name {g.name[:40]!r}")
    else:
        for k, old in enumerate(tensor_names(c.model)):
            if chance(rng, 0.4):
                new = f"{pick(rng, HOSTILE_NAMES)}#{k}"
                if new not in used:
                    rename_tensor(c.model, old, new)
                    used.add(new)
        c.note("hostile tensor names (renamed consistently)")
    c.expect = "valid"


@mutation("opset_ir")
def opset_ir(c: Case, rng) -> None:
    m = c.model
    what = int(rng.integers(5))
    if what == 0:
        m.ir_version = int(pick(rng, [0, -1, 1, 2, 3, 4, 7, 11, 12, 99, 2**62]))
        c.note(f"ir_version -> {m.ir_version}")
        return
    default = [o for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if what == 1 and default:
        default[0].version = int(pick(rng, [0, -1, 1, 6, 7, 9, 10, 11, 12, 14, 17, 18, 19, 21, 23, 24, 99, 2**62]))
        c.note(f"default opset -> {default[0].version}")
    elif what == 2:
        del m.opset_import[:]
        c.note("no opset_import")
    elif what == 3:
        m.opset_import.append(helper.make_opsetid("", int(pick(rng, [11, 13, 17]))))
        c.note("default domain imported twice")
    else:
        m.opset_import.append(helper.make_opsetid(pick(rng, ["com.microsoft", "ai.onnx.ml", "ai.edgeq", "x"]),
                                                  int(pick(rng, [1, 0, -1]))))
        c.note("extra domain imported")


@mutation("op_type")
def op_type(c: Case, rng) -> None:
    node = pick(rng, c.model.graph.node)
    old = node.op_type
    node.op_type = pick(rng, SUPPORTED_OPS + OTHER_OPS)
    c.note(f"node '{node.name}': op {old} -> {node.op_type[:40]!r}")


@mutation("domain")
def domain(c: Case, rng) -> None:
    node = pick(rng, c.model.graph.node)
    node.domain = pick(rng, ["com.microsoft", "ai.onnx.ml", "ai.edgeq", "ai.onnx", "local", "\u202e", "a" * 300])
    c.note(f"{node.op_type} '{node.name}': domain -> {node.domain[:40]!r}")


@mutation("functions")
def functions(c: Case, rng) -> None:
    """A model-local function used by one node: fine, recursive, calling an unknown op, with
    a body that reads a name it does not define, or with a missing attribute reference."""
    g = c.model.graph
    node = pick(rng, [n for n in g.node if n.input and n.output])
    what = int(rng.integers(5))
    fname = "f"
    body = [helper.make_node("Relu", ["a"], ["b"])]
    if what == 1:
        body = [helper.make_node(fname, ["a"], ["b"], domain="local")]
    elif what == 2:
        body = [helper.make_node("Erf", ["a"], ["b"])]
    elif what == 3:
        body = [helper.make_node("Relu", ["zzz"], ["b"])]
    elif what == 4:
        r = helper.make_node("LeakyRelu", ["a"], ["b"])
        ref = r.attribute.add()
        ref.name, ref.ref_attr_name, ref.type = "alpha", "missing", 1
        body = [r]
    fn = helper.make_function("local", fname, ["a"], ["b"], body,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    c.model.functions.append(fn)
    c.model.opset_import.append(helper.make_opsetid("local", 1))
    new = helper.make_node(fname, [node.output[0]], [node.output[0] + "__f"], name="call_f", domain="local")
    for n in g.node:
        n.input[:] = [new.output[0] if i == node.output[0] else i for i in n.input]
    for o in g.output:
        if o.name == node.output[0]:
            o.name = new.output[0]
    g.node.append(new)
    c.note(f"local function (variant {what}) applied to the output of '{node.name}'")


@mutation("metadata")
def metadata(c: Case, rng) -> None:
    """Strings nothing computes with: metadata (one impersonating an edgeq graph), producer,
    doc strings. The model means the same."""
    m = c.model
    s = pick(rng, HOSTILE_NAMES)
    what = int(rng.integers(4))
    if what == 0:
        p = m.metadata_props.add()
        p.key, p.value = pick(rng, ["edgeq.format", "edgeq.meta", "k", s]), pick(rng, [s, "edgeq-graph-1", "{"])
    elif what == 1:
        m.producer_name, m.producer_version = s, s
    elif what == 2:
        m.doc_string = m.graph.doc_string = s
        for n in m.graph.node:
            n.doc_string = s
    else:
        m.model_version = int(pick(rng, BAD_INTS))
        m.domain = s
    c.expect = "valid"
    c.note(f"metadata variant {what}")


@mutation("reorder")
def reorder(c: Case, rng) -> None:
    """Nodes shuffled (ONNX asks for topological order; edgeq sorts): the model means the same."""
    g = c.model.graph
    if len(g.node) < 2:
        raise NotApplicable("one node")
    nodes = list(g.node)
    order = rng.permutation(len(nodes))
    del g.node[:]
    g.node.extend(nodes[int(i)] for i in order)
    c.expect = "valid"
    c.note("nodes shuffled")

