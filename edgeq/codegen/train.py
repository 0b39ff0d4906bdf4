"""The training step in C: `edgeq_model_train_step(input, label)` beside `edgeq_model_run`.

    tc = TrainingC(plan, arena, state)          # edgeq.training plan, arena and current state
    generate_c(qgraph, arena.memory, out_dir, training=tc)   # model.c + train_state.c

One step, as edgeq.training.step defines it (docs/training.md):
1. the forward is `edgeq_model_run_io` itself on the training arena (edgeq.training.arena):
   the tensors the backward reads are still there after it;
2. the loss gradient of the logits (eq_train_ce_grad_s8, then normalized);
3. one block per node of plan.backward, emitted by the "c-backward" stage's emitter of its
   op (registered below): the mask, the input gradient (normalized in place), the bias
   update, the weight update, in the reference's order (it decides the draws).

What a step changes lives in train_state.c (not model.c): the trained layers' int8 weights
and int32 biases (model.c reads them through `extern`: the forward uses the current values),
the master residuals and the draw counter. So a runner can relink the same model.o with a
state it wrote (a training run continued in chunks), and `edgeq train` writes the learned
state back the same way. `edgeq_model_train_state(i, &bytes)` lists the state arrays in the
order of `state_layout` (the runner prints them after training).

Return value of the step: 0, -(1 + layer) when a forward kernel failed, -(1 + EDGEQ_NUM_LAYERS
+ k) when backward block k failed (k = EDGEQ_TRAIN_BLOCKS: the loss), -(2 + EDGEQ_NUM_LAYERS +
EDGEQ_TRAIN_BLOCKS) for a label outside [0, classes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.codegen.carray import c_type, const_array
from edgeq.codegen.kernels import choose
from edgeq.codegen.names import comment_text
from edgeq.codegen.ops import _pool_fields
from edgeq.errors import EdgeqError
from edgeq.ir import Node
from edgeq.ops import implements, lookup
from edgeq.training.arena import PASS_ON, TrainArena
from edgeq.training.plan import TrainPlan

MAX_RANK = 8  # EQ_TRAIN_MAX_RANK


@dataclass(frozen=True)
class StateArray:
    """One array of the training state: what `edgeq_model_train_state(i)` returns."""
    kind: str        # weights | residuals | biases | draws
    layer: str       # the QConv/QGemm node ("" for draws)
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


# momentum velocities: state kind -> the TrainState.velocity key's second half
VELOCITY = {"weight_velocity": "weights", "bias_velocity": "bias"}


def state_layout(plan: TrainPlan) -> list[StateArray]:
    """Per trained layer: weights, residuals (master mode), biases, then with momentum the
    velocities (int32, one per parameter of the whole tensor); last the draw counter."""
    g, out = plan.graph, []
    momentum = bool(plan.options.momentum)
    for name, u in plan.updates.items():
        w = g.const(g.node_by_name(name).inputs[1])
        if u.weights:
            out.append(StateArray("weights", name, "int8", tuple(w.shape)))
            if plan.consts[name]["frac_bits"]:
                out.append(StateArray("residuals", name, "int8", tuple(w.shape)))
        if u.bias:
            out.append(StateArray("biases", name, "int32", (int(w.shape[0]),)))
        if momentum and u.weights:
            out.append(StateArray("weight_velocity", name, "int32", tuple(w.shape)))
        if momentum and u.bias:
            out.append(StateArray("bias_velocity", name, "int32", (int(w.shape[0]),)))
    return out + [StateArray("draws", "", "uint32", (1,))]


def state_arrays(state) -> list[np.ndarray]:
    """The values of a TrainState in state_layout order (a velocity not yet used is 0)."""
    out = []
    for a in state_layout(state.plan):
        if a.kind == "draws":
            out.append(np.array([state.draws.counter], np.uint32))
        elif a.kind in VELOCITY:
            v = state.velocity.get((a.layer, VELOCITY[a.kind]))
            out.append(np.zeros(a.shape, np.int32) if v is None else np.asarray(v, np.int32).reshape(a.shape))
        else:
            out.append(getattr(state, a.kind)[a.layer])
    return out


def load_state(state, arrays: list[np.ndarray]) -> None:
    """Put arrays (state_layout order, e.g. parsed from a device) into a TrainState."""
    for a, v in zip(state_layout(state.plan), arrays):
        v = np.asarray(v).reshape(a.shape).astype(a.dtype)
        if a.kind == "draws":
            state.draws.counter = int(v[0])
        elif a.kind in VELOCITY:
            state.velocity[(a.layer, VELOCITY[a.kind])] = v.astype(np.int64)
        else:
            getattr(state, a.kind)[a.layer] = v


class TrainingC:
    """What generate_c needs to add the training step to a model."""

    def __init__(self, plan: TrainPlan, arena: TrainArena, state):
        self.plan, self.arena, self.state = plan, arena, state
        self.layout = state_layout(plan)
        self.values = state_arrays(state)
        self.state_defs: list[str] = []
        self._residuals: dict[str, str] = {}
        self._velocities: dict[tuple[str, str], str] = {}
        g = plan.graph
        # tensor -> state index: the forward reads these through `extern` (train_state.c)
        self.mutable: dict[str, int] = {}
        for i, a in enumerate(self.layout):
            if a.kind in ("weights", "biases"):
                self.mutable[g.node_by_name(a.layer).inputs[1 if a.kind == "weights" else 2]] = i
        for name, u in plan.updates.items():
            node = g.node_by_name(name)
            if u.bias and (len(node.inputs) < 3 or not node.inputs[2]):
                raise EdgeqError(f"layer {name!r} has no bias to train", "train its weights only, or re-export it with a bias")
            if u.weights and g.tensors[node.inputs[1]].q.bits < 8:
                raise EdgeqError(f"layer {name!r} has {g.tensors[node.inputs[1]].q.bits}-bit weights; the C training "
                                 "step updates int8 weights", "compile with --weight-bits 8 to train its weights")

    # ---- what the emitters use ----------------------------------------------------------
    def state_value(self, tensor: str) -> np.ndarray:
        return self.values[self.mutable[tensor]]

    def define_state(self, ident: str, values: np.ndarray, note: str) -> None:
        self.state_defs.append(const_array(ident, values, note, storage=""))

    def buf(self, key: str, kind: str) -> str:
        """A gradient buffer: its int16 mantissas (m) or its int32 accumulator (acc)."""
        ctype = "int16_t" if kind == "m" else "int32_t"
        return f"({ctype} *)(void *)(edgeq_arena + {self.arena.offset(key)})"

    def exp(self, key: str) -> str:
        return f"ge[{self.arena.slot[key]}]"

    def out(self, node: Node, kind: str = "m") -> str:
        """The gradient of the node's output (what its rule reads)."""
        return self.buf(self.arena.grad[node.outputs[0]], kind)

    def out_exp(self, node: Node) -> str:
        return self.exp(self.arena.grad[node.outputs[0]])

    def into(self, node: Node, i: int) -> str:
        """The buffer key the node's rule writes input i's gradient into."""
        return self.arena.writes[(node.name, i)]

    def normalize(self, k: int, key: str, n: int, e_in: str) -> str:
        o = self.plan.options
        return (f"EQ_TRAIN_TRY({k}, eq_train_normalize({self.buf(key, 'acc')}, {n}, {e_in}, {o.grad_bits}, "
                f"{int(o.rounding == 'stochastic')}, &edgeq_train_draws, {self.buf(key, 'm')}, &{self.exp(key)}));")

    def sum_lines(self, k: int, node: Node) -> list[str]:
        """After a later reader's rule: add the sum so far of each tensor read by several nodes
        into the gradient this rule wrote (the reference's gradient.add, in backward order)."""
        o, lines = self.plan.options, []
        for tensor, before, key in self.arena.sums.get(node.name, ()):
            n = _elems(self.plan, tensor)
            lines += [f"/* {comment_text(tensor)} is read by several nodes: their gradients add up */",
                      f"EQ_TRAIN_TRY({k}, eq_train_grad_sum({self.buf(before, 'm')}, {self.exp(before)}, "
                      f"{self.buf(key, 'm')}, {self.exp(key)}, {n}, {int(o.rounding == 'stochastic')}, "
                      f"&edgeq_train_draws, {self.buf(key, 'acc')}, &{self.exp(key)}));",
                      self.normalize(k, key, n, self.exp(key))]
        return lines

    # ---- the C ----------------------------------------------------------------------------
    def emit(self, ctx) -> tuple[str, str, str]:
        """(model.h declarations, model.c definitions, train_state.c)."""
        plan, g = self.plan, self.plan.graph
        layer_of = {n.name: i for i, n in enumerate(g.nodes)}
        blocks = []
        for k, node in enumerate(plan.backward):
            ctx.layer = layer_of[node.name]
            impl = lookup("c-backward", node.op, node.name)
            lines = impl.fn(self, ctx, node, k) + self.sum_lines(k, node)
            head = f"    {{   /* backward {k}: {comment_text(node.name)} ({comment_text(node.op)}) */\n"
            blocks.append(head + "".join(f"        {line}\n" for line in lines) + "    }\n")
        logits = g.tensors[plan.logits]
        classes = int(np.prod(logits.shape[1:], dtype=np.int64))
        if logits.shape[0] != 1:
            raise EdgeqError(f"the logits have batch {logits.shape[0]}; a training step takes one sample",
                             "export the model with batch 1")
        loss = plan.loss
        n_layers, n_blocks = len(g.nodes), len(plan.backward)
        state_rows = [f"        case {i}: *bytes = (const uint8_t *)(const void *){self._state_ident(ctx, i)}; "
                      f"return {a.nbytes};" for i, a in enumerate(self.layout)]
        source = TRAIN_C.format(
            n_slots=max(len(self.arena.slot), 1), classes=classes, bad_label=-(2 + n_layers + n_blocks),
            logits=ctx.buf(plan.logits), acc=self.buf(self.arena.grad[plan.logits], "acc"),
            mult=loss["input_mult"], shift=loss["input_left_shift"], diff_min=loss["diff_min"],
            normalize=self.normalize(n_blocks, self.arena.grad[plan.logits], classes, "-14"), blocks="".join(blocks),
            n_layers=n_layers, n_blocks=n_blocks, state_cases="\n".join(state_rows), n_state=len(self.layout))
        header = TRAIN_H.format(n_blocks=n_blocks, classes=classes, n_state=len(self.layout))
        seed, counter = self.plan.options.seed & 0xFFFFFFFF, int(self.values[-1][0])
        state = STATE_C.format(model=comment_text(g.name), defs="\n".join(self.state_defs), seed=seed, counter=counter)
        return header, source, state

    def _state_ident(self, ctx, i: int) -> str:
        a = self.layout[i]
        if a.kind == "draws":
            return "&edgeq_train_draws.counter"
        node = self.plan.graph.node_by_name(a.layer)
        if a.kind == "residuals":
            return self.residual_ident(ctx, node)
        if a.kind in VELOCITY:
            return self.velocity_ident(ctx, node, VELOCITY[a.kind])
        return ctx.const(node.inputs[1 if a.kind == "weights" else 2])

    def velocity_ident(self, ctx, node: Node, which: str) -> str:
        """The momentum velocity of a layer's weights or bias: state, declared extern in model.c once."""
        key = (node.name, which)
        if key not in self._velocities:
            ident = ctx.names.get(node.name, "velw_" if which == "weights" else "velb_")
            kind = next(k for k, v in VELOCITY.items() if v == which)
            i = next(i for i, a in enumerate(self.layout) if a.kind == kind and a.layer == node.name)
            self.define_state(ident, self.values[i], f"{comment_text(node.name)} {which} momentum velocity")
            ctx.const_defs.append(f"extern int32_t {ident}[];\n")
            self._velocities[key] = ident
        return self._velocities[key]

    def momentum(self, ctx, node: Node, which: str) -> tuple[list[str], str]:
        """(the eq_train_momentum definition, its pointer) for a layer's update; NULL without momentum."""
        c = self.plan.consts[node.name]
        if "mu" not in c:
            return [], "NULL"
        var = "mw" if which == "weights" else "mb"
        mult, shift = (int(v) for v in c["mu"])
        return ([f"static const eq_train_momentum {var} = {{.mult = {mult}, .shift = {shift}, "
                 f".velocity = {self.velocity_ident(ctx, node, which)}}};"], f"&{var}")

    def residual_ident(self, ctx, node: Node) -> str:
        """The master residuals of a layer: state, declared extern in model.c once."""
        if node.name not in self._residuals:
            ident = ctx.names.get(node.name, "res_")
            i = next(i for i, a in enumerate(self.layout) if a.kind == "residuals" and a.layer == node.name)
            self.define_state(ident, self.values[i], f"{comment_text(node.name)} master residuals")
            ctx.const_defs.append(f"extern int8_t {ident}[];\n")
            self._residuals[node.name] = ident
        return self._residuals[node.name]

    def declare_state(self, ctx, tensor: str, ident: str, note: str) -> str:
        """A trained weight or bias: defined in train_state.c with the state's value, declared
        extern in model.c (Ctx asks this for every tensor in `mutable`)."""
        values = self.state_value(tensor)
        values = values.astype(np.int32) if values.dtype.kind == "i" and values.dtype.itemsize > 1 else values
        self.define_state(ident, values, f"{note}, trained")
        return f"/* {note}: trained, defined in train_state.c */\nextern {c_type(values.dtype.name)} {ident}[];\n"


TRAIN_H = """\
/* ---- training (edgeq compile --train): one SGD step on one sample, in place ----
 * The forward runs on the same arena as edgeq_model_run; the trained weights and biases,
 * their master residuals and the draw counter live in train_state.c, so edgeq_model_run
 * answers with the learned parameters. Returns 0, -(1 + layer) for a forward kernel,
 * -(1 + EDGEQ_NUM_LAYERS + k) for backward block k (k = EDGEQ_TRAIN_BLOCKS: the loss), and
 * -(2 + EDGEQ_NUM_LAYERS + EDGEQ_TRAIN_BLOCKS) for a label outside [0, EDGEQ_TRAIN_CLASSES).
 * Not reentrant. */
#define EDGEQ_TRAIN_BLOCKS {n_blocks}
#define EDGEQ_TRAIN_CLASSES {classes}
#define EDGEQ_TRAIN_STATE_ARRAYS {n_state}
int edgeq_model_train_step(const int8_t *input, int32_t label);

/* State array i (0 <= i < EDGEQ_TRAIN_STATE_ARRAYS, the order of report.json's training
 * section): its bytes, returned count; -1 past the end. */
int32_t edgeq_model_train_state(int32_t i, const uint8_t **bytes);
"""

TRAIN_C = """\
/* ---- training step (docs/training.md; the golden semantics: edgeq.training.step) ---- */
#include "eq_train.h"

extern eq_draws edgeq_train_draws;

/* A backward kernel rejecting its arguments stops the step with -(1 + layers + block). */
#define EQ_TRAIN_TRY(block, call) do {{ if ((call) != EQ_OK) return -{n_layers} - 1 - (block); }} while (0)

int edgeq_model_train_step(const int8_t *input, int32_t label)
{{
    static int8_t logits_out[EDGEQ_OUTPUT_TOTAL];
    const int8_t *const inputs[1] = {{input}};
    int8_t *const outputs[1] = {{logits_out}};
    int32_t ge[{n_slots}] = {{0}};   /* the gradients' exponents: real = m * 2^e */
    int rc;
    if (label < 0 || label >= {classes}) {{
        return {bad_label};
    }}
    rc = edgeq_model_run_io(inputs, outputs);
    if (rc != 0) {{
        return rc;
    }}
    {{   /* loss: softmax cross-entropy gradient of the int8 logits, exponent -14 */
        EQ_TRAIN_TRY({n_blocks}, eq_train_ce_grad_s8({logits}, {classes}, label, {mult}, {shift}, {diff_min}, {acc}));
        {normalize}
    }}
{blocks}    (void)ge;
    return 0;
}}

int32_t edgeq_model_train_state(int32_t i, const uint8_t **bytes)
{{
    switch (i) {{
{state_cases}
        default: return -1;
    }}
}}
"""

STATE_C = """\
/* {model}: the training state, written by edgeq. Do not edit.
 * The trained layers' current weights and biases (the forward reads them), their master
 * residuals and the stochastic-rounding draw counter. edgeq compile writes the starting
 * state; edgeq train writes the learned one. */
#include <stdint.h>

#include "eq_train.h"

{defs}
eq_draws edgeq_train_draws = {{{seed}u, {counter}u}};
"""


# ---- the backward emitters ("c-backward" stage) ------------------------------------------------

def _i32(ctx, values, role: str, note: str) -> str:
    ident = ctx.names.get(role, f"l{ctx.layer}_")
    ctx.const_defs.append(const_array(ident, np.asarray(values, dtype=np.int64).astype(np.int32), note))
    return ident


def _elems(plan: TrainPlan, tensor: str) -> int:
    return int(np.prod(plan.graph.tensors[tensor].shape, dtype=np.int64))


@implements("c-backward", "QConv", "QGemm")
def layer_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """Mask, input gradient + normalize, bias update, weight update (eq_train.h's order)."""
    plan, c = t.plan, t.plan.consts[node.name]
    impl = choose(node, ctx.graph, ctx.kernels)
    call = impl.fn(ctx, node, impl.meta["kernel"])  # the forward's params (and its arrays)
    fc = node.op == "QGemm"
    upd = plan.updates.get(node.name)
    if impl.meta["kernel"].weight_storage != "int8" and (plan.wants[node.name][0] or (upd and upd.weights)):
        raise EdgeqError(f"layer {node.name!r} keeps its weights packed as int4; the C training step reads int8 "
                         "weights to pass a gradient through it", "compile with --weight-bits 8, or train only "
                         "layers after it (a smaller last:N)")
    lines = [f"int16_t *m = {t.out(node)};"]
    if plan.wants[node.name][0] or (upd is not None and upd.weights):  # the kernels that read the geometry
        lines.insert(0, f"static const {call.ptype} p = {{"
                     + ", ".join(f".{f} = {int(v)}" for f, v in call.fields.items()) + "};")
    n_out = _elems(plan, node.outputs[0])
    if c["lo"] is not None or c["hi"] is not None:
        lines.append(f"EQ_TRAIN_TRY({k}, eq_train_mask(m, {ctx.buf(node.outputs[0])}, {n_out}, "
                     f"{int(c['lo'] is not None)}, {c['lo'] or 0}, {int(c['hi'] is not None)}, {c['hi'] or 0}));")
    weights = ctx.const(node.inputs[1], role="weights")
    if plan.wants[node.name][0]:
        x = node.inputs[0]
        gm = _i32(ctx, c["gmult"], "gmult", f"{comment_text(node.name)} input-gradient prescale")
        gs = _i32(ctx, c["gshift"], "gshift", "its shifts")
        fn = "eq_train_fc_input_grad" if fc else "eq_train_conv2d_input_grad"
        key = t.into(node, 0)
        lines.append(f"EQ_TRAIN_TRY({k}, {fn}(&p, m, {weights}, {gm}, {gs}, {t.buf(key, 'acc')}));")
        lines.append(t.normalize(k, key, _elems(plan, x), f"{t.out_exp(node)} - {int(c['gexp'])}"))
    e = t.out_exp(node)
    if upd is not None and upd.bias:
        y = ctx.shape(node.outputs[0])
        positions = 1 if fc else int(np.prod(y[2:], dtype=np.int64))
        bm = _i32(ctx, c["bmult"], "bmult", f"{comment_text(node.name)} bias step multipliers (QAS, lr)")
        bs = _i32(ctx, c["bshift"], "bshift", "their shifts")
        defs, mu = t.momentum(ctx, node, "bias")
        lines += defs + [f"EQ_TRAIN_TRY({k}, eq_train_bias_update({y[0]}, {y[1]}, {positions}, m, {e}, {bm}, {bs}, "
                         f"{int(c['blimit'])}, {mu}, {ctx.opt(node, 2, 'bias')}));"]
    if upd is not None and upd.weights:
        o = plan.options
        wm = _i32(ctx, c["wmult"], "wmult", f"{comment_text(node.name)} weight step multipliers (QAS, lr)")
        ws = _i32(ctx, c["wshift"], "wshift", "their shifts")
        sel = "NULL"
        if upd.channels is not None:
            n_in = int(np.asarray(c["select"]).shape[1]) * (int(node.attr("group", 1)) if not fc else 1)
            chosen = np.zeros(n_in, np.uint8)
            chosen[list(upd.channels)] = 1
            sel = ctx.names.get("selected", f"l{ctx.layer}_")
            ctx.const_defs.append(const_array(sel, chosen, f"{comment_text(node.name)} input channels that train"))
        res = t.residual_ident(ctx, node) if c["frac_bits"] else "NULL"
        lines.append(f"static const eq_train_weight_params u = {{.fit = {int(c['wfit'])}, "
                     f".stochastic_fit = {int(o.rounding == 'stochastic')}, "
                     f".stochastic = {int(o.weight_update == 'stochastic')}, .frac_bits = {int(c['frac_bits'])}, "
                     f".qmax = {int(c['qmax'])}}};")
        fn = "eq_train_fc_weight_update" if fc else "eq_train_conv2d_weight_update"
        defs, mu = t.momentum(ctx, node, "weights")
        lines += defs + [f"EQ_TRAIN_TRY({k}, {fn}(&p, &u, {ctx.buf(node.inputs[0])}, m, {e}, {wm}, {ws}, {sel}, "
                         f"&edgeq_train_draws, {mu}, {weights}, {res}));"]
    return lines


@implements("c-backward", "QAvgPool")
def avgpool_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    if not t.plan.wants[node.name][0]:
        return ["/* no gradient wanted below */"]
    c = t.plan.consts[node.name]
    fields = _pool_fields(ctx, node)
    pm = _i32(ctx, c["pmult"], "pmult", f"{comment_text(node.name)} gradient share per tap count")
    ps = _i32(ctx, c["pshift"], "pshift", "their shifts")
    key = t.into(node, 0)
    return [f"static const eq_pool_params p = {{" + ", ".join(f".{f} = {int(v)}" for f, v in fields.items()) + "};",
            f"EQ_TRAIN_TRY({k}, eq_train_avgpool_input_grad(&p, {t.out(node)}, {pm}, {ps}, {t.buf(key, 'acc')}));",
            t.normalize(k, key, _elems(t.plan, node.inputs[0]), f"{t.out_exp(node)} - {int(c['pexp'])}")]


@implements("c-backward", "QAdd")
def add_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """Mask, then each wanted input gets the masked gradient (summed over the axes it was
    broadcast along), normalized again."""
    c = t.plan.consts[node.name]
    n = _elems(t.plan, node.outputs[0])
    lines = [f"int16_t *m = {t.out(node)};"]
    if c["lo"] is not None or c["hi"] is not None:
        lines.append(f"EQ_TRAIN_TRY({k}, eq_train_mask(m, {ctx.buf(node.outputs[0])}, {n}, "
                     f"{int(c['lo'] is not None)}, {c['lo'] or 0}, {int(c['hi'] is not None)}, {c['hi'] or 0}));")
    for i in (0, 1):
        if not t.plan.wants[node.name][i]:
            continue
        key = t.into(node, i)
        in_shape, out_shape = tuple(ctx.shape(node.inputs[i])), tuple(ctx.shape(node.outputs[0]))
        if in_shape == out_shape:
            lines.append(f"EQ_TRAIN_TRY({k}, eq_train_widen(m, {n}, {t.buf(key, 'acc')}));")
        else:
            lines += _unbroadcast(t, ctx, node, i, k, key, in_shape, out_shape)
        lines.append(t.normalize(k, key, _elems(t.plan, node.inputs[i]), t.out_exp(node)))
    return lines


def _strides(shape) -> list[int]:
    out = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        out[d] = out[d + 1] * int(shape[d + 1])
    return out


def _rank_ok(node: Node, shape) -> None:
    if not 1 <= len(shape) <= MAX_RANK:
        raise EdgeqError(f"{node.name}: the C training step moves gradients of rank 1 to {MAX_RANK}, not "
                         f"{len(shape)}", "train only layers after it (a smaller last:N)")


def _unbroadcast(t: TrainingC, ctx, node: Node, i: int, k: int, key: str, in_shape, out_shape) -> list[str]:
    """The broadcast input's gradient: the sum over the axes it was stretched along."""
    _rank_ok(node, out_shape)
    aligned = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    stride = [0 if a == 1 and o != 1 else s for a, o, s in zip(aligned, out_shape, _strides(aligned))]
    terms = int(np.prod(out_shape, dtype=np.int64)) // int(np.prod(aligned, dtype=np.int64))
    if terms * (1 << (t.plan.options.grad_bits - 2)) > (1 << 31) - 1:
        raise EdgeqError(f"{node.name}: input {i} is broadcast over {terms} elements; its gradient sum would leave "
                         "int32", "train only layers after it (a smaller last:N)")
    shape = _i32(ctx, out_shape, f"shape{i}", f"{comment_text(node.name)} output shape")
    strides = _i32(ctx, stride, f"stride{i}", f"input {i}'s strides over it (0: broadcast)")
    return [f"EQ_TRAIN_TRY({k}, eq_train_unbroadcast(m, {len(out_shape)}, {shape}, {strides}, "
            f"{int(np.prod(aligned, dtype=np.int64))}, {t.buf(key, 'acc')}));"]


def _gather(t: TrainingC, ctx, node: Node, i: int, k: int, stride, offset: int, flat: bool = False) -> list[str]:
    """Input i's gradient: the output gradient's elements at offset + index . stride, exponent
    unchanged (flat: a plain copy of all of them, stride [1])."""
    x_shape = (_elems(t.plan, node.inputs[i]),) if flat else tuple(ctx.shape(node.inputs[i]))
    _rank_ok(node, x_shape)
    key = t.into(node, i)
    shape = _i32(ctx, x_shape, f"shape{i}", f"{comment_text(node.name)} input {i} shape")
    strides = _i32(ctx, stride, f"stride{i}", "where its elements sit in the output gradient")
    return [f"EQ_TRAIN_TRY({k}, eq_train_gather_grad({t.out(node)}, {len(x_shape)}, {shape}, {strides}, {offset}, "
            f"{t.buf(key, 'm')}));", f"{t.exp(key)} = {t.out_exp(node)};"]


@implements("c-backward", "QTranspose")
def transpose_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """y = transpose(x, perm): x's element idx sits at y's sum over d of idx[d] * y_stride[inverse[d]]."""
    if not t.plan.wants[node.name][0]:
        return ["/* no gradient wanted below */"]
    y_shape = ctx.shape(node.outputs[0])
    perm = node.attr("perm")
    perm = list(range(len(y_shape)))[::-1] if perm is None else [int(p) for p in perm]
    y_stride = _strides(y_shape)
    return _gather(t, ctx, node, 0, k, [y_stride[j] for j in np.argsort(perm)], 0)


@implements("c-backward", "QPad")
def pad_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """The crop: x's element idx sits at y's (idx + leading pads)."""
    if not t.plan.wants[node.name][0]:
        return ["/* no gradient wanted below */"]
    y_shape = ctx.shape(node.outputs[0])
    pads = [int(p) for p in node.attr("pads")]
    if min(pads) < 0:
        raise EdgeqError(f"{node.name}: a Pad with negative pads (a crop) has no C gradient",
                         "train only layers after it (a smaller last:N)")
    y_stride = _strides(y_shape)
    return _gather(t, ctx, node, 0, k, y_stride, sum(b * s for b, s in zip(pads[:len(y_shape)], y_stride)))


@implements("c-backward", "QConcat")
def concat_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """The split: input i's element idx sits at y's idx shifted by i's start along the axis."""
    y_shape = ctx.shape(node.outputs[0])
    axis = int(node.attr("axis", 0)) % len(y_shape)
    y_stride = _strides(y_shape)
    lines, start = [], 0
    for i, name in enumerate(node.inputs):
        if t.plan.wants[node.name][i]:
            lines += _gather(t, ctx, node, i, k, y_stride, start * y_stride[axis])
        start += int(ctx.shape(name)[axis])
    return lines or ["/* no gradient wanted below */"]


@implements("c-backward", "QMaxPool")
def maxpool_backward(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """Each window's gradient to the tap that won (the kept input decides), then normalize."""
    if not t.plan.wants[node.name][0]:
        return ["/* no gradient wanted below */"]
    fields = _pool_fields(ctx, node)
    key = t.into(node, 0)
    return [f"static const eq_pool_params p = {{" + ", ".join(f".{f} = {int(v)}" for f, v in fields.items()) + "};",
            f"EQ_TRAIN_TRY({k}, eq_train_maxpool_input_grad(&p, {ctx.buf(node.inputs[0])}, {t.out(node)}, "
            f"{t.buf(key, 'acc')}));",
            t.normalize(k, key, _elems(t.plan, node.inputs[0]), t.out_exp(node))]


@implements("c-backward", *PASS_ON)
def pass_on(t: TrainingC, ctx, node: Node, k: int) -> list[str]:
    """The input's gradient is the output's buffer and exponent (edgeq.training.arena), or a
    copy of it when the input has other readers whose gradients add to it."""
    if node.name in t.arena.copies:
        return _gather(t, ctx, node, 0, k, [1], 0, flat=True)
    return ["/* the gradient passes on unchanged (same buffer, same exponent) */"]
