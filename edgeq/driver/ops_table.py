"""`edgeq ops`: the op registry's completeness table, for people and for the tests.

The registry imports no stage (edgeq/ops/registry.py); this module, in the driver layer,
imports every stage package so that the table shows every implementation, then renders
ops/table.py's rows as a terminal table or as Markdown (the README's copy).
"""
from __future__ import annotations

import importlib

from edgeq.ops import REGISTRY
from edgeq.ops import table as T
from edgeq.targets import all_targets

TITLES = {"float": "Float ops (canonical graph) x stage",
          "integer": "Integer ops (ai.edgeq) x stage"}


def load_stages() -> dict[str, str]:
    """Import every stage's package; {stage: why not} for the ones that are not there yet
    (the stages the open issues add)."""
    absent = {}
    for st in REGISTRY.stages.values():
        try:
            importlib.import_module(st.package)
        except ModuleNotFoundError as e:
            if not st.package.startswith(e.name or "\0"):
                raise
            absent[st.name] = f"{st.package} is not written yet ({st.note or 'open'})"
    return absent


def target_stages() -> dict[str, tuple[str, ...]]:
    """{target name: the stages it needs}, for the targets that declare them."""
    return {t.name: tuple(t.stages) for t in all_targets() if hasattr(t, "stages")}


def tables() -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the three tables: float ops, integer ops, integer op x target."""
    load_stages()
    out = [(TITLES[ns], *T.rows(ns)) for ns in ("float", "integer")]
    out.append(("Integer ops x target (a target builds an op when every stage it needs has it)",
                *T.target_rows(target_stages())))
    return out


def notes() -> list[str]:
    out = [f"{st.name}: {st.note}" for st in REGISTRY.stages.values() if st.note]
    out += [f"(pass) {op} in stage {stage}: {why}" for (stage, op), why in T.GAPS.items()]
    return out


def markdown() -> str:
    parts = []
    for title, header, rows in tables():
        parts.append(f"{title}:\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        parts += ["| " + " | ".join(r) + " |" for r in rows]
        parts.append("")
    parts += [f"- {n}" for n in notes()]
    return "\n".join(parts) + "\n"


def print_tables(console) -> None:
    from rich.table import Table  # the CLI's renderer (rich loads only for this command)
    for title, header, rows in tables():
        t = Table(*header, title=title, title_justify="left", box=None)
        for r in rows:
            t.add_row(*r)
        console.print(t)
        console.print()
    for n in notes():
        console.print(f"[dim]{n}[/dim]")
