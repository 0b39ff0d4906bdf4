"""The completeness table: op x stage and op x target, read from the registry.

`edgeq ops` prints it (after importing every stage) for users, like TFLite Micro's list
of supported ops; tests/test_ops_registry.py walks `missing()` so that an op without an
implementation a declaration promises is named in the test run, not found deep in a
user's compile. Known gaps are listed in GAPS, each with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeq.ops.registry import REGISTRY, Impl

# (stage, op): why the op needs no implementation in that stage.
GAPS: dict[tuple[str, str], str] = {
    ("quantize", "BatchNormalization"): "passes/fold_batchnorm.py (always in the float pass list) "
                                        "folds it into the layer before it or rewrites it as Mul + Add",
    # the TFLite targets compile GRU/LSTM with an int8 state (--state-bits 8): no int16 state reaches them
    ("tflite", "QGatedState"): "the TFLite targets keep the recurrent state int8: passes/expand_gated_state.py",
    ("tflite", "QNarrow16"): "the TFLite targets keep the recurrent state int8: passes/expand_gated_state.py",
}

MARK = "✓"
_NAMESPACE_DOMAIN = {"float": "", "integer": "ai.edgeq"}


@dataclass(frozen=True)
class Cell:
    """One op in one stage: its implementations and a short text for the table."""
    impls: tuple[Impl, ...]
    text: str

    @property
    def present(self) -> bool:
        return bool(self.impls)


def _describe(stage: str, impls: list[Impl]) -> str:
    """What a reader wants to know beside the tick: the kernels, builtins or ops it makes."""
    if not impls:
        return ""
    meta = impls[0].meta
    if stage == "c":
        return ", ".join(str(i.meta["kernel"]) for i in impls)
    if stage == "npu":  # its builtins are the tflite column's; say only what stays on the CPU
        return MARK + (f" (CPU: {' '.join(meta['cpu'])})" if meta.get("cpu") else "")
    if "builtins" in meta:
        return " ".join(meta["builtins"])
    if "emits" in meta:
        return "-> " + " ".join(meta["emits"])
    return MARK


def cell(stage: str, op: str) -> Cell:
    impls = REGISTRY.implementations(stage, op)
    return Cell(tuple(impls), _describe(stage, impls))


def stages_for(namespace: str) -> list[str]:
    return [s.name for s in REGISTRY.stages.values() if s.keyed_by == namespace]


def importers_of(op: str) -> list[str]:
    """ONNX op types whose converter may emit canonical op `op`."""
    return sorted(o for o, impls in REGISTRY.implemented("import").items()
                  if any(op in i.meta.get("emits", ()) for i in impls))


def rows(namespace: str) -> tuple[list[str], list[list[str]]]:
    """(header, one row per declared op) for "float" or "integer" ops; float ops start
    with the ONNX ops that import as them."""
    ops = sorted(REGISTRY.ops(_NAMESPACE_DOMAIN[namespace]))
    stages = stages_for(namespace)
    header = ["op"] + (["imported from"] if namespace == "float" else []) + stages
    out = []
    for op in ops:
        row = [op] + ([", ".join(importers_of(op)) or "-"] if namespace == "float" else [])
        row += [cell(s, op).text or _gap_text(s, op) for s in stages]
        out.append(row)
    return header, out


def _gap_text(stage: str, op: str) -> str:
    return "(pass)" if (stage, op) in GAPS else "-"


def target_rows(targets: dict[str, tuple[str, ...]]) -> tuple[list[str], list[list[str]]]:
    """op x target: a target builds an integer op when every stage it needs implements it.
    `targets` maps a target name to its stages (Target.stages); targets needing the same
    stages share a column."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, needs in targets.items():
        groups.setdefault(tuple(needs), []).append(name)
    header = ["op"] + [_group_name(names) for names in groups.values()]
    out = []
    for op in sorted(REGISTRY.ops("ai.edgeq")):
        out.append([op] + [MARK if all(cell(s, op).present for s in needs) else "-" for needs in groups])
    return header, out


def _group_name(names: list[str]) -> str:
    """"host, cortex-*": targets of one family (name up to its last "-") shown once."""
    families: dict[str, list[str]] = {}
    for n in names:
        families.setdefault(n.rsplit("-", 1)[0] if "-" in n else n, []).append(n)
    return ", ".join(f"{fam}-*" if len(ns) > 1 else ns[0] for fam, ns in families.items())


def missing() -> list[str]:
    """Every implementation an expected stage lacks, as one line each (GAPS excepted)."""
    out = []
    for st in REGISTRY.stages.values():
        domain = _NAMESPACE_DOMAIN.get(st.keyed_by)
        if not st.expected or domain is None:
            continue
        for op in sorted(REGISTRY.ops(domain)):
            if not REGISTRY.implementations(st.name, op) and (st.name, op) not in GAPS:
                out.append(f"{st.keyed_by} op {op} has no {st.what} (stage {st.name!r}, "
                           f"registered by {st.package})")
    for op in sorted(REGISTRY.ops("")):
        if not importers_of(op):
            out.append(f"float op {op} is emitted by no ONNX converter (stage 'import')")
    return out
