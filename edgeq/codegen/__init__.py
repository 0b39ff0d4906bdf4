"""C code generation: a quantized graph and its memory plan -> model.h + model.c.

    plan = plan_memory(qgraph)                     # the arena, with the chosen kernels' scratch
    files = generate_c(qgraph, plan, out_dir)      # [out_dir/model.h, out_dir/model.c]

    build = plan_build(qgraph, choice_for_cpu("cortex-m7"), "fast", ram_limit)  # a target's build:
    generate_c(build.graph, build.plan, out_dir, kernels=build.kernels)         # lowered, planned

Each layer's call comes from the C stage's emitter for its op and the kernel variant chosen
for it (ops.py, ops_nhwc.py, kernels.py: `KernelChoice` says what the target's CPU offers;
layout.py stores each activation in the layout of the kernel that writes it).

model.c is a straight-line sequence of eq_kernels.h calls (no interpreter): one block per
layer with its params as a `static const` struct, weights and integer parameters as
`static const` arrays (flash), activations in one static arena at the plan's offsets.
Compile it with runtime_c's sources and `-I edgeq.runtime_c.include_dir()`. Strings from
the model file (graph, node and tensor names) reach the C only through names.py: as
prefixed identifiers or as whitelisted comment text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.codegen import kernels as ckernels
from edgeq.codegen import ops  # noqa: F401  (registers the C stage's emitters and kernels)
from edgeq.codegen import ops_nhwc  # noqa: F401  (the channels-last variants)
from edgeq.codegen import ops_recurrent  # noqa: F401  (the int16 recurrent state)
from edgeq.codegen.carray import const_array, pack_s4
from edgeq.codegen.kernels import PORTABLE, CKernel, KernelChoice, choose, portable_functions, scratch_size
from edgeq.codegen.layout import LAYOUT_KEY, NCHW_NODES_KEY, assign_layouts
from edgeq.codegen.names import NameTable, check_plain_c, comment_text
from edgeq.codegen.row_chunks import plan_row_chunks
from edgeq.codegen.templates import IO_MACROS, LAYER, LAYER_IN_PARTS, LAYER_WITH_PARAMS, MODEL_C, MODEL_H
from edgeq.errors import EdgeqError
from edgeq.fixedpoint import quantize_multiplier
from edgeq.ir import Graph, Node
from edgeq.planning.memory_plan import MemoryPlan
from edgeq.planning.memory_plan import plan_memory as plan_arena
from edgeq.runtime_c.packing import rq_ctype, rq_initializer

__all__ = ["generate_c", "io_info", "plan_memory", "plan_build", "CBuild", "scratch_size", "CKernel",
           "KernelChoice", "PORTABLE", "KERNELS", "KERNELS_S4"]

# The portable kernel of each op, for int8 weights and for packed int4 weights (derived
# from the registrations in ops.py: the one place kernel names are written).
KERNELS = portable_functions(8)
KERNELS_S4 = {op: fn for op, fn in portable_functions(4).items() if fn != KERNELS[op]}


def plan_memory(qgraph: Graph, scratch_size=None, scratch: str = "fit",
                kernels: KernelChoice = PORTABLE, **training) -> MemoryPlan:
    """The memory plan of a C build: the planner (edgeq.planning.memory_plan) given the scratch of
    the C kernels chosen for `kernels`, unless another scratch rule is passed. `training`:
    the planner's keep_until/extra (a training build's kept tensors and gradients)."""
    rule = scratch_size or (lambda n, g: ckernels.scratch_size(n, g, kernels))
    return plan_arena(qgraph, scratch_size=rule, scratch=scratch, **training)


SCRATCH_PLANS = ("fast", "fit", "always")


@dataclass
class CBuild:
    """What a C build compiles: the graph lowered for its kernels (layout.py), the memory
    plan, and the kernel choice with the nodes that run without scratch. `plans`: the arena
    of the fastest plan (every layer gets its kernel's scratch) and of the smallest (scratch
    only where it does not raise the peak: other layers run in row chunks or on a
    scratch-free variant)."""
    graph: Graph
    plan: MemoryPlan
    kernels: KernelChoice
    policy: str                 # the plan used: "always", "fit", or "rows" (fit + row chunks)
    arenas: dict[str, int]      # {"fastest": bytes, "smallest": bytes}

    def report(self, asked: str) -> dict:
        return {"scratch_policy": asked, "plan": "fastest" if self.policy == "always" else "smallest",
                "arena_bytes_fastest": self.arenas["fastest"], "arena_bytes_smallest": self.arenas["smallest"],
                "layout": self.kernels.layout, "isa": list(self.kernels.isa) or ["portable"],
                "direct": list(self.plan.direct), "row_chunks": list(self.plan.chunks)}


def plan_build(qgraph: Graph, kernels: KernelChoice = PORTABLE, scratch: str = "fit",
               ram_limit: int | None = None) -> CBuild:
    """Lower `qgraph` for `kernels` and plan its arena. scratch: "fit" (the smallest arena,
    scratch-free variants where a layer's scratch would raise it), "always" (every layer its
    scratch), or "fast": the smallest arena with those layers run in row chunks instead
    (row_chunks.py: the fast kernels, scratch in dead rows); if a layer still has to run
    scratch-free, "always" when its arena fits `ram_limit` (the part's SRAM left for the
    arena; None: no limit)."""
    if scratch not in SCRATCH_PLANS:
        raise ValueError(f"scratch={scratch!r}: choose one of {SCRATCH_PLANS}")
    graph = assign_layouts(qgraph, kernels)
    kernels = kernels.keeping_nchw(graph.meta.get(NCHW_NODES_KEY, ()))
    plans = {p: plan_memory(graph, scratch=p, kernels=kernels) for p in ("always", "fit")}
    plans["rows"] = plan_row_chunks(graph, plans["fit"], kernels)
    policy = scratch
    if scratch == "fast":
        policy = "rows"
        if plans["rows"].direct and (ram_limit is None or plans["always"].arena_bytes <= ram_limit):
            policy = "always"
    plan = plans[policy]
    return CBuild(graph, plan, kernels.without_scratch(plan.direct), policy,
                  {"fastest": plans["always"].arena_bytes, "smallest": plans["fit"].arena_bytes})


class Ctx:
    """Tensor names -> C expressions, collecting the constant arrays the layers use."""

    def __init__(self, graph: Graph, plan: MemoryPlan, kernels: KernelChoice = PORTABLE, training=None):
        self.graph, self.plan, self.kernels = graph, plan, kernels
        self.training = training  # codegen.train.TrainingC: its trained tensors are state, not flash
        # identifiers model.c defines itself; model names only ever get prefixed ones
        self.names = NameTable({"edgeq_arena", "copy_bytes", "p", "ins", "chunk", "input", "output",
                                "inputs", "outputs", "edgeq_model_run", "edgeq_model_run_io"})
        self.const_defs: list[str] = []
        self.includes: list[str] = []  # headers of kernel bodies compiled into model.c
        self._const_ids: dict[str, str] = {}
        self.layer = 0  # the layer being emitted: constants are named after it

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.tensors[tensor].shape)

    def buf(self, tensor: str) -> str:
        if self.graph.const(tensor) is not None:
            return self.const(tensor, "int8", "operand")
        return f"edgeq_arena + {self.plan.offsets[tensor]}"

    def const(self, tensor: str, dtype: str | None = None, role: str = "const") -> str:
        """The `static const` array holding a constant, named `l<layer>_<role>` (the graph's
        tensor name goes in the comment above it, through comment_text: names are unsafe)."""
        def emit(arr: np.ndarray) -> tuple[np.ndarray, str]:
            if dtype is not None:
                arr = self._cast(arr, dtype, tensor)
            return arr, f"{comment_text(tensor)} {list(arr.shape)}"
        return self._const_once(tensor, role, emit)

    def packed_s4(self, tensor: str, role: str = "weights") -> str:
        """A weight constant packed two int4 values per byte (uint8), for the _s4 kernels."""
        return self._const_once(tensor, role, lambda arr: (
            pack_s4(arr), f"{comment_text(tensor)} {list(arr.shape)} int4, packed two per byte (eq_kernels.h)"))

    def _const_once(self, tensor: str, role: str, emit) -> str:
        """Define a constant's C array the first time a layer asks for it; later layers
        (a weight shared by two nodes) reuse the same array."""
        data = self.graph.const(tensor)
        if data is None:
            raise ValueError(f"{tensor!r} should be a constant input")
        if tensor not in self._const_ids:
            ident = self.names.get(role, f"l{self.layer}_")
            arr, note = emit(np.asarray(data))
            if self.training is not None and tensor in self.training.mutable:
                self.const_defs.append(self.training.declare_state(self, tensor, ident, note))
            else:
                self.const_defs.append(const_array(ident, arr, note))
            self._const_ids[tensor] = ident
        return self._const_ids[tensor]

    def opt(self, node: Node, k: int, role: str) -> str:
        """An optional constant input (e.g. a bias): its array or NULL."""
        name = node.inputs[k] if k < len(node.inputs) else ""
        return self.const(name, "int32", role) if name else "NULL"

    def attr_array(self, node: Node, key: str, dtype: str) -> str:
        ident = self.names.get(key, f"l{self.layer}_")
        arr = self._cast(np.asarray(node.attr(key)), dtype, f"{node.name}.{key}")
        self.const_defs.append(const_array(ident, arr, f"{comment_text(node.name)} attribute {key}"))
        return ident

    def layout(self, tensor: str) -> str:
        """The tensor's layout in the arena (layout.py: "nchw" unless assigned "nhwc")."""
        return self.graph.meta.get(LAYOUT_KEY, {}).get(tensor, "nchw")

    def packed(self, role: str, arr: np.ndarray, note: str) -> str:
        """A constant packed at compile time for one layer's kernel (not a graph tensor)."""
        ident = self.names.get(role, f"l{self.layer}_")
        self.const_defs.append(const_array(ident, np.asarray(arr), note))
        return ident

    def packed_weights(self, w: np.ndarray) -> str:
        """Packed weights, int8 or (the DSP depthwise) int16 pairs in words; the kernels take int8_t *."""
        ident = self.packed("weights", w, f"weights packed for the kernel ({w.dtype.name})")
        return ident if w.dtype == np.int8 else f"(const int8_t *){ident}"

    def requant(self, rq: np.ndarray, isa: str) -> str:
        """Per-channel requantization constants (eq_rq, or eq_rq4 blocks for MVE)."""
        ident = self.names.get("rq", f"l{self.layer}_")
        self.const_defs.append(f"/* requantization constants (eq_kernels_nhwc.h) */\n"
                               f"static const {rq_ctype(isa)} {ident}[{len(rq)}] __attribute__((aligned(4))) = "
                               f"{rq_initializer(rq)};\n")
        return ident

    def include(self, header: str) -> None:
        if header not in self.includes:
            self.includes.append(header)

    def define(self, text: str) -> None:
        """A definition model.c needs before the run (e.g. a specialised layer function)."""
        self.const_defs.append(text)

    def scratch(self, node: Node) -> str:
        off = self.plan.scratch.get(node.name)
        return "NULL" if off is None else f"edgeq_arena + {off[0]}"

    @staticmethod
    def _cast(arr: np.ndarray, dtype: str, what: str) -> np.ndarray:
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(f"{what}: values outside {dtype}")
        return arr.astype(dtype)


def _fields(values: dict) -> str:
    def c(v):
        return "{" + ", ".join(str(int(e)) for e in v) + "}" if isinstance(v, (list, tuple)) else str(int(v))
    items = [f".{k} = {c(v)}" for k, v in values.items()]
    lines = [", ".join(items[i:i + 4]) for i in range(0, len(items), 4)]
    return ",\n".join("            " + line for line in lines)


def emit_layer(ctx: Ctx, index: int, node: Node) -> str:
    ctx.layer = index
    impl = choose(node, ctx.graph, ctx.kernels)
    call = impl.fn(ctx, node, impl.meta["kernel"])
    head = {"index": index, "name": comment_text(node.name), "op": comment_text(node.op),
            "shape": "x".join(map(str, ctx.shape(node.outputs[0])))}
    if call is None:  # an alias: documented, nothing runs
        return f"    /* layer {index}: {head['name']} ({head['op']}) aliases its input */\n"
    pre = "".join(f"        {line}\n" for line in call.pre)
    if call.ptype is None:
        return LAYER.substitute(head, pre=pre, call=f"{call.fn}({', '.join(call.args)})")
    if call.parts:  # one call per range of output rows (row_chunks.py), each its own params
        calls = "".join(f"        EQ_TRY({index}, {call.fn}(&p[{k}], {', '.join(args)}));\n"
                        for k, (_, args) in enumerate(call.parts))
        fields = ",\n".join("        {\n" + _fields(f) + "\n        }" for f, _ in call.parts)
        return LAYER_IN_PARTS.substitute(head, pre=pre, ptype=call.ptype, n=len(call.parts), fields=fields,
                                         calls=calls)
    return LAYER_WITH_PARAMS.substitute(head, pre=pre, ptype=call.ptype, fields=_fields(call.fields),
                                        fn=call.fn, args=", ".join(call.args))


def io_info(qgraph: Graph) -> dict:
    """Names, shapes and byte sizes of the graph's inputs and outputs (in run order)."""
    def one(name):
        t = qgraph.tensors[name]
        return {"name": name, "shape": [int(d) for d in t.shape], "bytes": int(t.nbytes)}
    return {"inputs": [one(n) for n in qgraph.inputs], "outputs": [one(n) for n in qgraph.outputs]}


def _io_macros(qgraph: Graph, names: list[str], kind: str) -> str:
    out = []
    for i, name in enumerate(names):
        t = qgraph.tensors[name]
        scale = float(np.ravel(t.q.scale)[0]) if t.q is not None else 1.0
        zp = int(np.ravel(t.q.zero_point)[0]) if t.q is not None else 0
        mult, shift = quantize_multiplier(scale)
        out.append(IO_MACROS.substitute(kind=kind.lower(), KIND=kind, index=i, name=comment_text(name),
                                        shape="x".join(map(str, t.shape)), scale=f"{scale:.9g}",
                                        size=t.nbytes, zero_point=zp, mult=mult, shift=shift))
    if len(names) == 1:  # the common single-tensor names
        out.append(f"#define EDGEQ_{kind}_SIZE EDGEQ_{kind}0_SIZE\n")
    return "".join(out)


def _run_functions(ctx: Ctx, qgraph: Graph) -> tuple[str, str]:
    """Declaration and definition of edgeq_model_run with one pointer per input/output."""
    if len(qgraph.inputs) == 1 and len(qgraph.outputs) == 1:
        params, ins, outs = ["const int8_t *input", "int8_t *output"], ["input"], ["output"]
    else:
        ins = [ctx.names.get(n, "in_") for n in qgraph.inputs]
        outs = [ctx.names.get(n, "out_") for n in qgraph.outputs]
        params = [f"const int8_t *{i}" for i in ins] + [f"int8_t *{o}" for o in outs]
    sig = f"int edgeq_model_run({', '.join(params)})"
    doc = "/* Run one inference: " + comment_text(", ".join(qgraph.inputs) + " -> " + ", ".join(qgraph.outputs)) + ". */"
    body = (f"{sig}\n{{\n"
            f"    const int8_t *const inputs[{len(ins)}] = {{{', '.join(ins)}}};\n"
            f"    int8_t *const outputs[{len(outs)}] = {{{', '.join(outs)}}};\n"
            f"    return edgeq_model_run_io(inputs, outputs);\n}}\n")
    return f"{doc}\n{sig};", body


def generate_c(qgraph: Graph, plan: MemoryPlan, out_dir, *, profile_marks: bool = False,
               kernels: KernelChoice = PORTABLE, training=None) -> list[Path]:
    """Write model.h and model.c into out_dir; returns their paths. `kernels`: what the
    target's CPU offers (the plan's scratch must come from the same choice).

    With `training` (a codegen.train.TrainingC, whose arena plan `plan` must be), model.c
    also holds edgeq_model_train_step and train_state.c the trained parameters.

    With profile_marks, each layer is preceded by EDGEQ_LAYER_MARK(i) and the last is
    followed by EDGEQ_LAYER_MARK(num_layers); the macro calls edgeq_layer_mark only when
    compiled with -DEDGEQ_PROFILE, so one model.c serves measured and plain builds."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(qgraph, plan, kernels, training)
    layers = []
    for i, node in enumerate(qgraph.nodes):
        if profile_marks:
            layers.append(f"    EDGEQ_LAYER_MARK({i});\n")
        layers.append(emit_layer(ctx, i, node))
    if profile_marks:
        layers.append(f"    EDGEQ_LAYER_MARK({len(qgraph.nodes)});\n")
    for name in qgraph.outputs:
        if qgraph.const(name) is not None or name not in plan.offsets:
            raise EdgeqError(f"graph output {name!r} is a constant", "export a model whose outputs are computed")
    copy_in = "".join(f"    copy_bytes(edgeq_arena + {plan.offsets[n]}, inputs[{i}], {plan.sizes[n]});\n"
                      for i, n in enumerate(qgraph.inputs))
    copy_out = "".join(f"    copy_bytes(outputs[{i}], edgeq_arena + {plan.offsets[n]}, {plan.sizes[n]});\n"
                       for i, n in enumerate(qgraph.outputs))
    run_decl, run_def = _run_functions(ctx, qgraph)
    train_decl = train_def = state = ""
    if training is not None:
        train_decl, train_def, state = training.emit(ctx)
    model = comment_text(qgraph.name)
    batch = qgraph.tensors[qgraph.inputs[0]].shape[0] if qgraph.inputs else 1
    header = MODEL_H.substitute(
        model=model, batch=batch, arena_bytes=plan.arena_bytes, num_layers=len(qgraph.nodes),
        num_inputs=len(qgraph.inputs), num_outputs=len(qgraph.outputs),
        io_macros=_io_macros(qgraph, qgraph.inputs, "INPUT") + "\n" + _io_macros(qgraph, qgraph.outputs, "OUTPUT"),
        input_sizes=", ".join(str(plan.sizes[n]) for n in qgraph.inputs),
        output_sizes=", ".join(str(plan.sizes[n]) for n in qgraph.outputs),
        input_total=sum(plan.sizes[n] for n in qgraph.inputs),
        output_total=sum(plan.sizes[n] for n in qgraph.outputs), run_decl=run_decl + "\n\n" + train_decl)
    source = MODEL_C.substitute(
        model=model, arena_bytes=plan.arena_bytes, arena_alloc=max(plan.arena_bytes, 16),
        constants="".join(f'#include "{h}"\n' for h in ctx.includes) + "\n" * bool(ctx.includes)
        + "\n".join(ctx.const_defs),
        copy_in=copy_in, layers="".join(layers),
        copy_out=copy_out, run_def=run_def + "\n" + train_def)
    paths = [out_dir / "model.h", out_dir / "model.c"]
    paths[0].write_text(check_plain_c(header, "model.h"))
    paths[1].write_text(check_plain_c(source, "model.c"))
    if training is not None:
        paths.append(out_dir / "train_state.c")
        paths[2].write_text(check_plain_c(state, "train_state.c"))
    return paths
