"""One small module per float op family; each turns float nodes into `ai.edgeq` nodes.

A rule is `fn(ctx: QuantContext, node: Node) -> None`, registered with
`@implements("quantize", "Conv", emits=("QConv",))` (the integer ops it may write).
It reads the float node (its inputs are already quantized: `ctx.qp(name)` gives their
QParams), adds integer constants and one or more `ai.edgeq` nodes to `ctx.out`, and
declares every int8 activation it writes with `ctx.add_act(name, shape, qparams)`.

Why one module per family: the rules differ in what they need (weights, tables,
reciprocals, softmax constants), and a reader checking one op against docs/semantics.md
should find it in one short file. Importing the package registers every rule in it.
"""
from edgeq.ops.registry import import_submodules

import_submodules(__name__, __path__)
