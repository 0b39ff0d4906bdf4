"""Layout assignment: which activations a C build keeps channels-last, and the transposes
between kernels of different layouts.

The quantized graph is NCHW (the integer reference's layout, the golden semantics); layout
is a lowering decision. `assign_layouts(qgraph, choice)` returns a copy for the C stage in
which every tensor keeps its logical (NCHW) shape and Graph.meta[LAYOUT_KEY] says which are
stored channels-last ([N, H, W, C], or [N, L, C] for [N, C, L]):

- a node's outputs take the layout of the kernel chosen for it (kernels.choose), and an
  input stored in the other layout gets a relayout first: a QTranspose with the identity
  (logical) permutation whose output is stored in the wanted layout, made once per tensor
  and layout and shared by every reader;
- a tensor whose two layouts are the same bytes (rank <= 2, C == 1, or H == W == 1) never
  needs one;
- a weightless op with kernels in both layouts (Add, pools) whose input is stored NCHW
  (after an int4 conv, which has NCHW kernels only) stays NCHW: a relayout costs more than
  the faster kernel saves, and its two buffers would raise the arena (such nodes are
  listed in KernelChoice.nchw_nodes, which the lowered graph's meta carries);
- a model's QTranspose writes whatever layout the build prefers, so the NHWC -> NCHW
  transpose at the input of an image model (vww01, ic01, sww01) becomes a byte identity: it
  is replaced by a QReshape, an alias of its input (no copy, no arena);
- the model's I/O contract is kept: inputs are read in the model's own layout, and a 4-D
  output stored channels-last is transposed back to NCHW by a last relayout.

The lowered graph runs under the integer reference with the same results (its relayouts
are identity transposes), but its QReshapes made from transposes reinterpret bytes: it is
the C stage's program, not a model.
"""
from __future__ import annotations

from edgeq.codegen.kernels import KernelChoice, kernel_of
from edgeq.errors import EdgeqError
from edgeq.ir import QDOMAIN, Graph, Node, Tensor
from edgeq.ops import holds

LAYOUT_KEY = "c_layout"
NCHW_NODES_KEY = "c_nchw_nodes"
NCHW, NHWC = "nchw", "nhwc"


def storage_order(rank: int, layout: str) -> list[int]:
    """The logical axes in storage order: NHWC keeps the channel axis (1) innermost."""
    if layout == NHWC and rank >= 3:
        return [0, *range(2, rank), 1]
    return list(range(rank))


def layout_of(graph: Graph, tensor: str) -> str:
    return graph.meta.get(LAYOUT_KEY, {}).get(tensor, NCHW)


def same_bytes(shape, order_a: list[int], order_b: list[int]) -> bool:
    """Two storage orders of `shape` give the same bytes when they differ only in where they
    put axes of size 1."""
    return [a for a in order_a if shape[a] != 1] == [a for a in order_b if shape[a] != 1]


def physical_transpose(in_shape, perm, in_layout: str, out_layout: str) -> tuple[list[int], list[int]]:
    """A logical transpose (out axis j = in axis perm[j]) between tensors stored in the
    given layouts, as a transpose of the stored bytes: (stored input dims, permutation)."""
    r = len(in_shape)
    src, dst = storage_order(r, in_layout), storage_order(r, out_layout)
    where = {a: i for i, a in enumerate(src)}
    return [int(in_shape[a]) for a in src], [where[perm[a]] for a in dst]


def is_byte_identity(in_shape, perm, in_layout: str, out_layout: str) -> bool:
    dims, q = physical_transpose(in_shape, perm, in_layout, out_layout)
    return [a for a in q if dims[a] != 1] == sorted(a for a in q if dims[a] != 1)


def assign_layouts(qgraph: Graph, choice: KernelChoice) -> Graph:
    """The C stage's copy of `qgraph` for a build offering `choice` (module doc). An NCHW
    build gets the graph itself."""
    if choice.layout == NCHW:
        return qgraph
    g = qgraph.copy()
    layouts: dict[str, str] = {t: NCHW for t in g.inputs}
    relayouts: dict[tuple[str, str], str] = {}
    kept: set[str] = set()
    nodes: list[Node] = []

    def rank(t: str) -> int:
        return len(g.tensors[t].shape)

    def stored(t: str, want: str) -> str:
        """`t` in layout `want`: itself, or the output of a (shared) relayout."""
        have = layouts.get(t, NCHW)
        shape = g.tensors[t].shape
        if have == want or same_bytes(shape, storage_order(len(shape), have), storage_order(len(shape), want)):
            return t
        if (t, want) not in relayouts:
            new = g.unique_name(f"{t}/{want}")
            src = g.tensors[t]
            g.add_tensor(Tensor(new, src.shape, src.dtype, None, src.q))
            nodes.append(Node("QTranspose", f"{t}/to_{want}", [t], [new], {"perm": list(range(len(shape)))},
                              domain=QDOMAIN))
            layouts[new] = want
            relayouts[(t, want)] = new
        return relayouts[(t, want)]

    for n in g.nodes:
        if n.op == "QTranspose":
            out = n.outputs[0]
            layouts[out] = choice.layout if rank(out) >= 3 else NCHW
            x = n.inputs[0]
            perm = n.attr("perm")
            perm = list(range(rank(x)))[::-1] if perm is None else [int(p) for p in perm]
            if is_byte_identity(g.tensors[x].shape, perm, layouts.get(x, NCHW), layouts[out]):
                n = Node("QReshape", n.name, [x], [out], {"shape": list(g.tensors[out].shape)}, n.domain)
            nodes.append(n)
            continue
        want = kernel_of(n, g, choice).layout
        if want != NCHW and _follows_input(n, g, choice, layouts):
            kept.add(n.name)
            want = NCHW
        n.inputs = [stored(t, want) if t and g.const(t) is None else t for t in n.inputs]
        for o in n.outputs:
            layouts[o] = want if rank(o) >= 3 else NCHW
        nodes.append(n)

    for out in g.outputs:  # the model's outputs in its own (NCHW) layout
        shape = g.tensors[out].shape
        if same_bytes(shape, storage_order(len(shape), layouts[out]), storage_order(len(shape), NCHW)):
            continue
        inner = g.unique_name(f"{out}/{layouts[out]}")
        g.add_tensor(Tensor(inner, shape, g.tensors[out].dtype, None, g.tensors[out].q))
        for n in nodes:
            n.inputs = [inner if t == out else t for t in n.inputs]
            n.outputs = [inner if t == out else t for t in n.outputs]
        layouts[inner], layouts[out] = layouts[out], NCHW
        nodes.append(Node("QTranspose", f"{out}/to_{NCHW}", [inner], [out], {"perm": list(range(len(shape)))},
                          domain=QDOMAIN))

    g.nodes = nodes
    g.meta[LAYOUT_KEY] = {t: v for t, v in layouts.items() if v != NCHW}
    g.meta[NCHW_NODES_KEY] = sorted(kept)
    return g


def _follows_input(n: Node, g: Graph, choice: KernelChoice, layouts: dict[str, str]) -> bool:
    """A weightless node whose first input is stored NCHW (not layout-free) and that has an
    NCHW kernel too: keep it NCHW."""
    x = next((t for t in n.inputs if t and g.const(t) is None), None)
    if x is None or holds("weighted", n) or layouts.get(x, NCHW) != NCHW:
        return False
    shape = g.tensors[x].shape
    if same_bytes(shape, storage_order(len(shape), NCHW), storage_order(len(shape), choice.layout)):
        return False
    try:
        kernel_of(n, g, choice.keeping_nchw([n.name]))
    except EdgeqError:
        return False
    return True

