"""The target registry: every way edgeq can build and run a quantized graph.

A target module exposes `TARGETS: list[Target]`. A Target has `name`, `description` (one
line, shown by `edgeq compile --help`) and four methods:

    build(qgraph, out_dir, report, options=None)        write the build into out_dir and
                                                        add measurements to report; options:
                                                        edgeq.options.BuildOptions (test vectors,
                                                        scratch policy, budget), or the test
                                                        vectors alone
    run(out_dir, feeds_int8) -> {output: int8 [N, ...]} run a batch on the target's runner
    profile(out_dir, device) -> dict                    instructions / time per layer
    flash(out_dir, probe, dry_run=False) -> dict        put the firmware on a (real or
                                                        emulated) board

Modules are imported lazily, in MODULES order. A module that is not present, or that needs
a third-party package this machine lacks (e.g. an optional oracle), is skipped and noted
in SKIPPED, so the other targets keep working; any other error inside a module is raised.
"""
from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from edgeq.errors import EdgeqError

MODULES = ["reference", "host", "mcu", "arm64", "tflite", "npu"]
SKIPPED: dict[str, str] = {}  # module -> why it was not loaded


class Target(Protocol):
    name: str
    description: str

    stages: tuple[str, ...]  # the per-op stages a build needs (`edgeq ops`)

    def build(self, qgraph, out_dir, report: dict, options=None) -> None: ...
    def run(self, out_dir, feeds_int8: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
    def profile(self, out_dir, device: str) -> dict: ...
    def flash(self, out_dir, probe: str, dry_run: bool = False) -> dict: ...


def _load(module: str) -> list:
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{module}":
            return []  # not written yet
        if e.name and not e.name.startswith(("edgeq", "targets")):
            SKIPPED[module] = f"needs the Python package {e.name!r}"
            return []
        raise
    return list(getattr(mod, "TARGETS", []))


def all_targets() -> list:
    targets, seen = [], set()
    for module in MODULES:
        for t in _load(module):
            if t.name not in seen:
                seen.add(t.name)
                targets.append(t)
    return targets


def target_names() -> list[str]:
    return [t.name for t in all_targets()]


def get_target(name: str):
    for t in all_targets():
        if t.name == name:
            return t
    skipped = "".join(f"; module {m} not loaded: {why}" for m, why in SKIPPED.items())
    raise EdgeqError(f"unknown target {name!r}{skipped}",
                     f"choose one of: {', '.join(target_names())}")
