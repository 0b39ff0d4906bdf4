"""Mixed-precision weight bit-widths (HAWQ-V3 style): which Conv/Gemm layers get int4.

    layers = weighted_layers(graph)                       # sizes, MACs per layer
    sens = hawq_sensitivity(graph, feeds)                 # {layer: {4: s, 8: s}}
    bits = assign_bitwidth_ilp(layers, sens, [size_budget(layers, 0.6 * all8)])

The modules, one concern each:
  layers.py      the weighted layers of a float graph and their packed weight bytes / MACs
  hessian.py     Hutchinson's estimator of Hessian traces (label-free KL loss)
  sensitivity.py HAWQ sensitivity (trace x ||Q_b(W) - W||^2) and a measured one
  ilp.py         the integer program (scipy.optimize.milp) with budgets, ties and locks
  cost_model.py  BOPs, per-layer instruction counts measured on QEMU, firmware flash from ELFs
  pareto.py      a sweep of budgets -> size-versus-fidelity plot
  plan.py        the compile stage that `--weight-bits auto` runs
"""
from edgeq.mixed_precision.layers import Layer, weighted_layers
from edgeq.mixed_precision.ilp import Budget, Once, assign_bitwidth_ilp, size_budget

__all__ = ["Layer", "weighted_layers", "Budget", "Once", "assign_bitwidth_ilp", "size_budget"]
