"""Training builds of the C targets: `edgeq compile --train SPEC` and `edgeq train DIR`.

A training build is an ordinary build (model.c, the firmware or host executable, run and
flash as usual) whose model.c also holds `edgeq_model_train_step` (edgeq.codegen.train) on
a training memory plan (edgeq.training.arena), and whose trained parameters live in
src/train_state.c. Beside it the target links a trainer: a main that trains on samples
and prints the learned state (DIR/model_train on the host, fw_train.elf on the boards).

The compile checks the trainer like the inference self-check: it trains on the embedded
test vectors (labels 0, 1, 2, ...) and the learned state must equal edgeq.training's
reference step for step (np.array_equal); the boards' trainer is also measured (flash,
static RAM, painted stack, QEMU instructions per step) into report.json's `training`.
"""
from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.codegen import CBuild, generate_c, plan_memory
from edgeq.codegen.kernels import PORTABLE
from edgeq.codegen.train import TrainingC, state_arrays, state_layout
from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.training import LayerUpdate, TrainOptions, TrainPlan, TrainState, build_plan, train_step
from edgeq.training.arena import plan_train_memory
from edgeq.training.auto import select
from edgeq.training.memory import step_memory

DEFAULT_BUDGET = 256 * 1024  # --train-budget on the host: the 256 KB
CHECK_STEPS = 4              # training steps of the compile's self-check


@dataclass
class TrainSetup:
    """What a training build carries to its target (BuildOptions.training; it is not part of
    the graph file)."""
    plan: TrainPlan
    state: TrainState
    spec: str
    budget: int
    auto: dict | None = None
    check: dict = field(default_factory=dict)


def options_of(section: dict | None, lr: float | None = None) -> TrainOptions:
    o = dict((section or {}).get("options", {}))
    if lr is not None:
        o["lr"] = float(lr)
    return TrainOptions(**o)


def setup_training(qgraph: Graph, spec: str, budget: int, options: TrainOptions,
                   probe: np.ndarray | None, inference_bytes: int) -> TrainSetup:
    """Resolve the spec (auto: edgeq.training.auto under the budget left beside inference)
    and build the plan with a fresh state."""
    auto = None
    updates = spec
    if spec == "auto":
        if probe is None:
            raise EdgeqError("--train auto measures gradients on calibration samples", "give --calib FILE")
        left = budget - inference_bytes
        if left <= 0:
            raise EdgeqError(f"the training budget of {budget:,} bytes does not even hold inference "
                             f"({inference_bytes:,} bytes of arena and reserves)", "raise --train-budget")
        updates, auto = select(qgraph, left, probe[:32], None, options)
    plan = build_plan(qgraph, updates, options)
    return TrainSetup(plan, TrainState(plan), spec, int(budget), auto)


def updates_json(plan: TrainPlan) -> list[dict]:
    return [{"layer": u.node, "bias": u.bias, "weights": u.weights,
             "channels": None if u.channels is None else [int(c) for c in u.channels]} for u in plan.updates.values()]


def updates_from_json(rows: list[dict]) -> list[LayerUpdate]:
    return [LayerUpdate(r["layer"], bool(r["bias"]), bool(r["weights"]),
                        None if r.get("channels") is None else tuple(r["channels"])) for r in rows]


def training_scratch(scratch: str) -> str:
    """The memory plan of a training build: "fast" (pick by the part's SRAM) becomes "fit",
    since the training arena, not inference's, is what must fit the budget."""
    return "fit" if scratch == "fast" else scratch


def generate_training_model(qgraph: Graph, setup: TrainSetup, src, report: dict, scratch: str) -> CBuild:
    """model.h/.c with the training step and train_state.c; the report's `training` section.
    The model runs the portable NCHW kernels (PORTABLE): the C backward (codegen/train.py)
    reads its activations in NCHW, so a training build keeps the model's own layout."""
    kernels, policy = PORTABLE, training_scratch(scratch)
    arena = plan_train_memory(setup.plan, plan_memory, scratch=policy, kernels=kernels)
    generate_c(qgraph, arena.memory, src, profile_marks=True, kernels=kernels,
               training=TrainingC(setup.plan, arena, setup.state))
    fastest = plan_memory(qgraph, scratch="always", kernels=kernels).arena_bytes
    inference = plan_memory(qgraph, scratch=policy, kernels=kernels).arena_bytes
    params = step_memory(setup.plan)
    o = setup.plan.options
    report["training"] = {
        "spec": setup.spec, "budget_bytes": setup.budget,
        "options": {"lr": o.lr, "momentum": o.momentum, "weight_update": o.weight_update, "grad_bits": o.grad_bits,
                    "rounding": o.rounding, "seed": o.seed},
        "updates": updates_json(setup.plan),
        "state": [{"kind": a.kind, "layer": a.layer, "dtype": a.dtype, "shape": list(a.shape)}
                  for a in state_layout(setup.plan)],
        "backward": [n.name for n in setup.plan.backward],
        "memory": {"arena_bytes": arena.memory.arena_bytes, "inference_arena_bytes": inference,
                   "gradient_bytes": arena.gradient_bytes(),
                   "kept_activation_bytes": sum(arena.memory.sizes[t] for t in setup.plan.keep),
                   "trained_weight_bytes": params["weights"], "residual_bytes": params["residuals"],
                   "trained_bias_bytes": params["biases"], "momentum_bytes": params["momentum"]},
    }
    if setup.auto is not None:
        report["training"]["auto"] = {k: setup.auto[k] for k in ("budget", "chosen", "probe_samples", "labels")}
    # arenas: the inference plans of the same kernels (the training arena is in report["training"])
    return CBuild(qgraph, arena.memory, kernels.without_scratch(arena.memory.direct), policy,
                  {"fastest": fastest, "smallest": plan_memory(qgraph, scratch="fit", kernels=kernels).arena_bytes})


def check_labels(qgraph: Graph, n: int) -> np.ndarray:
    classes = int(np.prod(qgraph.tensors[qgraph.outputs[0]].shape[1:]))
    return (np.arange(n) % classes).astype(np.int64)


def reference_state(setup: TrainSetup, x: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """The state edgeq.training's reference reaches from setup.state after these steps."""
    state = copy.deepcopy(setup.state)
    for i in range(len(x)):
        train_step(setup.plan, state, x[i:i + 1], int(labels[i]))
    return state_arrays(state)


def parse_state(text: str, layout: list[dict]) -> tuple[list[np.ndarray], int, list[tuple[int, int]]]:
    """The trainer's lines -> (state arrays, steps done, errors)."""
    found, steps, errors = {}, 0, []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "state":
            found[int(parts[1])] = bytes.fromhex(parts[2] if len(parts) > 2 else "")
        elif parts[0] == "step":
            steps += 1
        elif parts[0] == "error":
            errors.append((int(parts[1]), int(parts[2])))
    arrays = []
    for i, a in enumerate(layout):
        dtype = np.dtype(a["dtype"]).newbyteorder("<")
        raw = found.get(i)
        want = int(np.prod(a["shape"])) * dtype.itemsize
        if raw is None or len(raw) != want:
            raise EdgeqError(f"the trainer printed no complete state array {i} ({a['kind']} of {a['layer'] or 'draws'})",
                             "see the runner's output; this is an edgeq bug: please report it")
        arrays.append(np.frombuffer(raw, dtype=dtype).astype(a["dtype"]).reshape(a["shape"]))
    return arrays, steps, errors


def self_check(setup: TrainSetup, got: list[np.ndarray], want: list[np.ndarray], where: str, steps: int) -> dict:
    layout = setup.plan
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if not np.array_equal(a, b)]
    check = {"steps": steps, "passed": not bad, "differing_state_arrays": bad}
    if bad:
        names = [f"{state_layout(layout)[i].kind} of {state_layout(layout)[i].layer or 'the draw counter'}" for i in bad]
        raise EdgeqError(f"the training self-check failed on {where}: after {steps} steps the C training step "
                         f"differs from the reference in {', '.join(names[:4])}",
                         "this is an edgeq bug (the C backward disagrees with edgeq.training): please report it "
                         "with the model")
    return check


def stream_blob(x: np.ndarray, labels: np.ndarray) -> bytes:
    """The host trainer's --stream records: the int8 input, then the label as int16 LE."""
    n = len(x)
    rows = np.ascontiguousarray(x, dtype=np.int8).reshape(n, -1).view(np.uint8)
    lab = np.asarray(labels, dtype="<i2").reshape(n, 1).view(np.uint8)
    return np.concatenate([rows, lab], axis=1).tobytes()


def state_source(setup: TrainSetup) -> str:
    """train_state.c for setup.state (the build's identifiers: the model is generated again).
    It holds the trained parameters only, never arena offsets, so any memory plan gives it."""
    with tempfile.TemporaryDirectory(prefix="edgeq-state-") as tmp:
        graph = setup.plan.graph
        generate_training_model(graph, setup, Path(tmp), {}, "fit")
        return (Path(tmp) / "train_state.c").read_text()


def state_npz(state: TrainState) -> dict[str, np.ndarray]:
    """What train_state.npz keeps between `edgeq train` runs: the residuals, the momentum
    velocities and the draw counter (the weights and biases are model.q.onnx's)."""
    out = {}
    for i, (a, v) in enumerate(zip(state_layout(state.plan), state_arrays(state))):
        if a.kind in ("residuals", "draws", "weight_velocity", "bias_velocity"):
            out[f"{i}_{a.kind}"] = v
    return out


def state_arrays_from(state: TrainState, saved: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The state's arrays with the residuals and counter of train_state.npz where they match."""
    arrays = state_arrays(state)
    for i, a in enumerate(state_layout(state.plan)):
        v = saved.get(f"{i}_{a.kind}")
        if v is not None and tuple(v.shape) == tuple(a.shape):
            arrays[i] = v
    return arrays
