"""What every graph pass receives besides the graph.

A pass is `def verb_noun(graph: Graph, ctx: PassContext) -> Graph` in its own file under
passes/. It may edit the graph in place and returns it. It records what it changed with
`ctx.record(...)` so `edgeq inspect` and report.json can show it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PassContext:
    calib: list[dict[str, np.ndarray]] | None = None  # calibration feeds, one dict a sample
    options: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def record(self, pass_name: str, **info: Any) -> None:
        self.log.append({"pass": pass_name, **info})
