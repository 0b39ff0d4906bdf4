"""Integer-only on-device training: the golden semantics of a training step.

    from edgeq.training import TrainOptions, build_plan, TrainState, train_step
    plan = build_plan(qgraph, "last:2", TrainOptions(lr=0.05))   # compile time
    state = TrainState(plan)
    train_step(plan, state, x_int8, label)                       # one SGD step, in place
    learned = state.to_graph()

Modules: gradient (integer gradients, rounding, the draw stream), loss (softmax
cross-entropy gradient on int8 logits), rules/ (one backward rule per op family), update
(fixed-point SGD with QAS), spec (bias / last:N / explicit), plan (the compile-time
part), step (the training step), memory (bytes per step), auto (sparse-update selection
under a memory budget). docs/training.md is the contract, with examples.
"""
from edgeq.training.plan import TrainOptions, TrainPlan, build_plan
from edgeq.training.spec import LayerUpdate
from edgeq.training.step import TrainState, train_step

__all__ = ["LayerUpdate", "TrainOptions", "TrainPlan", "TrainState", "build_plan", "train_step"]
