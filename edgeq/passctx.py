"""What every graph pass receives besides the graph.

A pass is `def verb_noun(graph: Graph, ctx: PassContext) -> Graph` in its own file under
passes/. It may edit the graph in place and returns it. It records what it changed with
`ctx.record(...)` so `edgeq inspect` and report.json can show it, and tells the user
something with `ctx.notice(...)` (the driver prints notices). Its settings are fields of
`ctx.options` (edgeq.options.PassOptions: typed, checked, with their defaults); a dict of
the same names is accepted and turned into one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeq.ir import Graph
from edgeq.options import PassOptions


@dataclass
class PassContext:
    calib: list[dict[str, np.ndarray]] | None = None  # calibration feeds, one dict a sample
    options: PassOptions = field(default_factory=PassOptions)
    log: list[dict[str, Any]] = field(default_factory=list)
    # passes over the quantized graph (integer bias correction) measure against this
    float_graph: Graph | None = None
    notices: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.options = PassOptions.of(self.options)

    def record(self, pass_name: str, **info: Any) -> None:
        self.log.append({"pass": pass_name, **info})

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def feeds(self) -> dict[str, np.ndarray]:
        """The calibration samples as one batch per input."""
        return {k: np.concatenate([s[k] for s in self.calib]) for k in self.calib[0]}
