"""A whole quantized graph lowered for an ARM application CPU: layouts, kernels, model.c.

    m = lower_model(qgraph, get_cpu("cortex-a76"))    # layouts + kernels + memory plan
    text = model_c(m)                                 # model.c calling them
    m.kernels()                                       # the objects to link beside it

The `arm64` target (targets/arm64.py) writes model.c, links it and runs it.

Every QConv, QGemm, QAdd, QMaxPool and QAvgPool runs as a TVM kernel (edgeq.lower_tvm.lower);
every other op keeps edgeq's C kernel (runtime_c), called exactly as the C targets call
it. model.c keeps edgeq's contract: one static arena planned by edgeq.planning,
weights and parameters as `static const` arrays, no heap, inputs and outputs in the
graph's own (NCHW) order. Inside, tensors sit where edgeq.lower_tvm.layouts says: NHWC
from the first conv on, NCHW for the C kernels; a layout change the graph does not make
free is a table-driven copy into the node's scratch (`relayout`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import numpy as np

from edgeq.codegen import Ctx, emit_layer
from edgeq.codegen.carray import const_array
from edgeq.codegen.names import comment_text
from edgeq.codegen.templates import COPY_BYTES_C, MODEL_C_PRELUDE
from edgeq.ir import Graph, Node
from edgeq.lower_tvm import layouts as lay
from edgeq.lower_tvm.cpus import Cpu
from edgeq.lower_tvm.kernel import Kernel
from edgeq.lower_tvm.lower import has_kernel, lower_node
from edgeq.planning.memory_plan import INPLACE_INPUTS, MemoryPlan, plan_memory

IMAGE_OPS = ("QConv", "QMaxPool", "QAvgPool")   # read and write channels-last
ELEMENTWISE_C = ("QLut", "QRequant")            # C kernels indifferent to the layout


@dataclass
class Convert:
    tensor: str
    table: np.ndarray      # dst[i] = src[table[i]]
    scratch_offset: int    # where the copy goes, inside the node's scratch


@dataclass
class Step:
    node: Node
    kernel: Kernel | None = None      # a TVM kernel, or None (C kernel, or no call)
    converts: list[Convert] = field(default_factory=list)
    free: bool = False                # a reshape / transpose that moves no data

    @property
    def scratch_bytes(self) -> int:
        own = self.kernel.scratch_bytes if self.kernel else 0
        return max([own] + [c.scratch_offset + c.table.size for c in self.converts])   # converts are aligned


@dataclass
class ModelLowering:
    graph: Graph
    cpu: Cpu
    steps: list[Step]
    layouts: dict[str, lay.Layout]
    plan: MemoryPlan | None = None

    def kernels(self) -> list[Kernel]:
        return [s.kernel for s in self.steps if s.kernel is not None]

    def c_fallbacks(self) -> dict[str, int]:
        """Ops run by edgeq's C kernels (no TVM kernel, or not an image), with their counts."""
        out: dict[str, int] = {}
        for s in self.steps:
            if s.kernel is None and not s.free:
                out[s.node.op] = out.get(s.node.op, 0) + 1
        return out


def inner_products(qgraph: Graph, cpu: Cpu) -> dict[str, str]:
    """The int8 inner product (smmla | sdot | neon) each conv / Gemm layer's kernel uses on
    `cpu`, by layer name: i8mm CPUs run smmla only where it fits (ops/conv.py). The
    kernels come from the object cache, which the build has just filled."""
    m = lower_model(qgraph, cpu)
    return {s.node.name: s.kernel.notes["inner"] for s in m.steps
            if s.kernel is not None and s.kernel.notes.get("op") == "conv"}


def product_label(products: dict[str, str], cpu: Cpu) -> str:
    """"smmla (14 layers) + sdot (5 layers)"; the CPU's best without conv layers."""
    counts = {p: list(products.values()).count(p) for p in ("smmla", "sdot", "neon") if p in products.values()}
    return " + ".join(f"{p} ({n} layer{'s' if n > 1 else ''})" for p, n in counts.items()) or cpu.inner_product


def _shape(g: Graph, t: str) -> tuple[int, ...]:
    return tuple(int(d) for d in g.tensors[t].shape)


def lower_model(qgraph: Graph, cpu: Cpu, log=lambda m: None) -> ModelLowering:
    """Assign layouts, lower each node (TVM or C), then plan the arena."""
    g = qgraph
    layouts = {t: lay.identity(_shape(g, t)) for t in g.inputs}
    steps = []
    for i, node in enumerate(g.nodes):
        step = Step(node)
        acts = [t for t in node.inputs if t and g.const(t) is None]
        x = acts[0] if acts else None
        y = node.outputs[0]

        def need(t: str, want: lay.Layout) -> None:
            if not lay.same_order(layouts[t], want):
                step.converts.append(Convert(t, lay.gather_table(layouts[t], want), 0))

        if node.op in IMAGE_OPS and has_kernel(node.op) and len(_shape(g, x)) in (3, 4):
            need(x, lay.channels_last(_shape(g, x)))
            step.kernel = lower_node(node, g, cpu)
            layouts[y] = lay.channels_last(_shape(g, y))
        elif node.op == "QAdd" and has_kernel(node.op):
            shapes = [_shape(g, t) for t in (*acts, y)]
            nhwc = all(len(s) == 4 for s in shapes) and any(
                lay.same_order(layouts[t], lay.channels_last(_shape(g, t))) for t in acts)
            for t in acts:
                need(t, lay.channels_last(_shape(g, t)) if nhwc else lay.identity(_shape(g, t)))
            step.kernel = lower_node(node, g, cpu, perm=(0, 2, 3, 1) if nhwc else None)
            layouts[y] = lay.channels_last(_shape(g, y)) if nhwc else lay.identity(_shape(g, y))
        elif node.op == "QGemm" and has_kernel(node.op):
            rows = _shape(g, x)[0]
            cols = lay.row_permutation(layouts[x], rows)
            if cols is None:
                need(x, lay.identity(_shape(g, x)))
            identity = cols is None or np.array_equal(cols, np.arange(cols.size))
            step.kernel = lower_node(node, g, cpu, k_order=None if identity else cols)
            layouts[y] = lay.identity(_shape(g, y))
        elif node.op == "QReshape":
            layouts[y] = lay.after_reshape(layouts[x], _shape(g, y))
            step.free = True
        elif node.op == "QTranspose" and (moved := _free_transpose(node, layouts[x], _shape(g, x))):
            layouts[y] = moved
            step.free = True
        elif node.op in ELEMENTWISE_C and _shape(g, x) == _shape(g, y):
            layouts[y] = layouts[x]
        else:
            for t in acts:
                need(t, lay.identity(_shape(g, t)))
            layouts[y] = lay.identity(_shape(g, y))
        offset = step.kernel.scratch_bytes if step.kernel else 0
        for c in step.converts:   # each copy after the kernel's own scratch, 16-byte aligned
            offset = -(-offset // 16) * 16
            c.scratch_offset = offset
            offset += c.table.size
        steps.append(step)
        log(f"layer {i} {node.op}: {'TVM ' + step.kernel.symbol if step.kernel else 'free' if step.free else 'C'}"
            f"{' + ' + str(len(step.converts)) + ' relayout' if step.converts else ''}")
    model = ModelLowering(g, cpu, steps, layouts)
    model.plan = plan_memory(_planning_graph(g, steps), scratch_size=_scratch_of(steps), scratch="always")
    return model


def _free_transpose(node: Node, src: lay.Layout, in_shape) -> lay.Layout | None:
    perm = node.attr("perm")
    perm = list(range(len(in_shape)))[::-1] if perm is None else [int(p) for p in perm]
    return lay.after_transpose(src, in_shape, perm)


def _planning_graph(g: Graph, steps: list[Step]) -> Graph:
    """The graph the memory planner sees: a transpose that moves no data becomes a
    reshape, so the planner makes its output an alias of its input, as it must be; and a
    TVM kernel's node is renamed out of the planner's in-place list (QAdd), because TVM
    declares its pointers `noalias`: its output must not overlap an input."""
    plan_g = g.copy()
    for k, step in enumerate(steps):
        n = plan_g.nodes[k]
        if step.free and step.node.op == "QTranspose":
            plan_g.nodes[k] = Node("QReshape", n.name, n.inputs[:1], n.outputs,
                                   {"shape": list(_shape(g, n.outputs[0]))}, n.domain)
        elif step.kernel is not None and n.op in INPLACE_INPUTS:
            plan_g.nodes[k] = Node(f"{n.op}.tvm", n.name, n.inputs, n.outputs, n.attrs)
    return plan_g


def _scratch_of(steps: list[Step]):
    sizes = {s.node.name: s.scratch_bytes for s in steps}
    return lambda node, graph: sizes.get(node.name, 0)


# ---- model.c ---------------------------------------------------------------------------

MODEL_C = Template("""\
/* ${model}: generated by edgeq (TVM lowering for ${cpu}). Do not edit. API: model.h.
 * Layers marked TVM call freestanding kernels generated by TVM (one object each, C ABI,
 * NHWC activations); the others call edgeq's C runtime (NCHW). */
#include "model.h"
#include "eq_kernels.h"

""" + MODEL_C_PRELUDE + """static int8_t edgeq_arena[${arena_alloc}] __attribute__((aligned(16)));

""" + COPY_BYTES_C + """
/* Layout change: dst[i] = src[table[i]] (tables from edgeq.lower_tvm.layouts). */
__attribute__((unused)) static void relayout(int8_t *dst, const int8_t *src, const int32_t *table, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        dst[i] = src[table[i]];
    }
}

/* ---- TVM kernels ---- */
${prototypes}

/* ---- constants (flash) ---- */
${constants}
int edgeq_model_run_io(const int8_t *const inputs[], int8_t *const outputs[])
{
${copy_in}
${layers}
${copy_out}
    return 0;
}

int edgeq_model_run(${run_params})
{
    const int8_t *const inputs[${n_in}] = {${in_names}};
    int8_t *const outputs[${n_out}] = {${out_names}};
    return edgeq_model_run_io(inputs, outputs);
}
""")


class _Ctx(Ctx):
    """edgeq.codegen's context, with some activations redirected to relayout copies."""

    def __init__(self, graph, plan):
        super().__init__(graph, plan)
        self.redirect: dict[str, str] = {}

    def buf(self, tensor: str) -> str:
        return self.redirect.get(tensor) or super().buf(tensor)


def model_c(m: ModelLowering) -> str:
    g, plan = m.graph, m.plan
    ctx = _Ctx(g, plan)
    consts: dict[int, tuple[np.ndarray, str]] = {}   # id -> (array kept alive, C name):
    layers = []                                        # an array shared by layers is written once

    def const_name(data: np.ndarray, hint: str) -> str:
        if id(data) not in consts:
            name = ctx.names.get(f"{hint}_{len(consts)}", "k_")
            ctx.const_defs.append(const_array(name, data, ""))
            consts[id(data)] = (data, name)
        return consts[id(data)][1]

    for i, step in enumerate(m.steps):
        node = step.node
        ctx.layer = i
        layers.append(f"    EDGEQ_LAYER_MARK({i});\n")
        scratch = plan.scratch.get(node.name, (None, 0))[0]
        pre = []
        ctx.redirect = {}
        for c in step.converts:
            table = const_name(c.table, f"l{i}_relayout")
            dst = f"edgeq_arena + {scratch + c.scratch_offset}"
            pre.append(f"relayout({dst}, {ctx.buf(c.tensor)}, {table}, {c.table.size});")
            ctx.redirect[c.tensor] = dst
        if step.free:
            layers.append(f"    /* layer {i}: {node.op} {_c_comment(node.name)}: moves no data */\n")
        elif step.kernel is None:
            text = emit_layer(ctx, i, node)
            layers.append(text.replace("{   /*", "{" + "".join(f"\n        {p}" for p in pre) + "\n        /*", 1)
                          if pre else text)
        else:
            k = step.kernel
            args = []
            for a in k.args:
                if a.role == "input":
                    args.append(ctx.buf(a.tensor))
                elif a.role == "output":
                    args.append(f"edgeq_arena + {plan.offsets[a.tensor]}")
                elif a.role == "scratch":
                    args.append(f"edgeq_arena + {scratch + k.scratch_offsets[a.name]}")
                else:
                    args.append(const_name(a.data, f"l{i}_{a.name}"))
            call = f"{k.symbol}({', '.join(args)});"   # activations and scratch are int8
            body = "".join(f"        {p}\n" for p in pre)
            layers.append(f"    {{   /* layer {i}: {_c_comment(node.name)} ({node.op}, TVM) */\n{body}"
                          f"        {call}\n    }}\n")
    layers.append(f"    EDGEQ_LAYER_MARK({len(m.steps)});\n")
    copy_in = "".join(f"    copy_bytes(edgeq_arena + {plan.offsets[t]}, inputs[{k}], {plan.sizes[t]});\n"
                      for k, t in enumerate(g.inputs))
    copy_out = []
    for k, t in enumerate(g.outputs):
        src = f"edgeq_arena + {plan.offsets[t]}"
        want = lay.identity(_shape(g, t))
        if lay.same_order(m.layouts[t], want):
            copy_out.append(f"    copy_bytes(outputs[{k}], {src}, {plan.sizes[t]});\n")
        else:
            table = const_name(lay.gather_table(m.layouts[t], want), f"out{k}_relayout")
            copy_out.append(f"    relayout(outputs[{k}], {src}, {table}, {plan.sizes[t]});\n")
    ins = [f"in{k}" for k in range(len(g.inputs))]
    outs = [f"out{k}" for k in range(len(g.outputs))]
    return MODEL_C.substitute(
        model=_c_comment(g.name), cpu=m.cpu.name, arena_alloc=max(plan.arena_bytes, 16),
        prototypes="\n".join(sorted({k.prototype() for k in m.kernels()})),
        constants="\n".join(ctx.const_defs), copy_in=copy_in, layers="".join(layers),
        copy_out="".join(copy_out),
        run_params=", ".join([f"const int8_t *{n}" for n in ins] + [f"int8_t *{n}" for n in outs]),
        n_in=len(ins), n_out=len(outs), in_names=", ".join(ins), out_names=", ".join(outs))


def _c_comment(text: str) -> str:
    return comment_text(text)
