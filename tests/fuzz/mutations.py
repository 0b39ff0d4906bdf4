"""The case generator: case i of seed s is a pure function of (s, i), so any case can be
rebuilt alone, in any order, on any machine (given the same seed models)."""
from __future__ import annotations

import numpy as np
import onnx

from tests.fuzz import mutate_attrs, mutate_files, mutate_graph, mutate_tensors  # noqa: F401 - registers
from tests.fuzz.case import MUTATIONS, Case, NotApplicable

STACKED = "stacked"     # a case with 2-3 mutations of different kinds
STACK_SHARE = 0.1


def kinds() -> list[str]:
    return sorted(MUTATIONS) + [STACKED]


def generate_case(seeds: dict[str, onnx.ModelProto], seed: int, index: int, host_every: int = 0) -> Case:
    rng = np.random.default_rng([seed, index])
    names = sorted(seeds)
    seed_name = names[int(rng.integers(len(names)))]
    model = onnx.ModelProto()
    model.CopyFrom(seeds[seed_name])
    case = Case(index, seed_name, model)
    if host_every and index % host_every == 0:
        case.target = "host"
    stacked = rng.random() < STACK_SHARE
    count = int(rng.integers(2, 4)) if stacked else 1
    expectations = []
    applied: list[str] = []
    for _ in range(50):  # draw until `count` kinds applied (some do not fit every model)
        if len(applied) == count:
            break
        kind = sorted(MUTATIONS)[int(rng.integers(len(MUTATIONS)))]
        if kind in applied or (case.raw is not None):
            continue
        case.expect = ""
        backup = onnx.ModelProto()
        backup.CopyFrom(case.model)
        try:
            MUTATIONS[kind](case, rng)
        except Exception as e:  # noqa: BLE001 - NotApplicable, or an earlier mutation broke what this one reads
            case.model.CopyFrom(backup)
            if not isinstance(e, NotApplicable):
                case.note(f"({kind} skipped: {type(e).__name__})")
            continue
        applied.append(kind)
        expectations.append(case.expect)
    case.kind = STACKED if stacked else applied[0]
    # A case must build only if every mutation kept the meaning; one attack makes it an attack.
    case.expect = ("reject" if "reject" in expectations else
                   "valid" if expectations and all(e == "valid" for e in expectations) else "")
    if stacked:
        case.notes.insert(0, "+".join(applied))
    return case
