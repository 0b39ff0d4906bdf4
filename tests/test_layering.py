"""One-way layers (docs/architecture.md, "The layers"), checked by parsing every module's
imports with `ast`: a lower layer never imports a higher one, a stage imports only the
stages upstream of it, and no edgeq module is imported inside a function (that hides a
cycle instead of removing it). Each violation is named with its file, line and rule.

Third-party imports are not looked at: they may stay inside functions where that keeps an
optional dependency optional (tflite oracles, Vela, TVM, matplotlib) or a command fast.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# source folder -> the package it is installed as (pyproject.toml's package-dir)
ROOTS = {"edgeq": "edgeq", "passes": "edgeq.passes", "targets": "edgeq.targets",
         "runtime_c": "edgeq.runtime_c", "models": "edgeq.models"}

FOUNDATION = {"errors", "ir", "fixedpoint", "progress", "options", "passctx", "annotations", "ops"}
# L1: each stage and the stages upstream of it in the data flow (the only ones it imports)
UPSTREAM = {
    "importer": set(),
    "floatexec": set(),
    "reference": set(),
    "planning": set(),
    "models": set(),
    "runtime_c": {"reference"},          # packing: QAdd's tables are the reference's rescaling
    "graphio": {"importer"},             # load_graph converts a foreign ONNX file
    "calibration": {"floatexec"},
    "quantization": {"floatexec", "reference"},
    "codegen": {"planning", "runtime_c", "training"},  # the kernels it calls, their weight packing; the C of training's plan
    "export": {"quantization", "reference"},
    "mixed_precision": {"floatexec", "quantization", "reference"},
    "report": {"codegen", "importer"},   # int4 byte counts; `edgeq inspect` of a model file
    "training": {"planning", "reference"},  # the training arena extends the memory plan
    "tflite_import": {"graphio", "quantization", "reference"},  # int8 .tflite -> quantized graph
}
LAYER2 = {"passes"}
LAYER3 = {"targets", "lower_tvm"}        # lower_tvm: the arm64 target's TVM lowering (issue 18)
LAYER4 = {"driver", "cli", "__init__"}
NAMES = {0: "L0 foundation", 1: "L1 stage", 2: "L2 passes", 3: "L3 targets", 4: "L4 driver"}

# Modules nothing imports, kept lazy so `import edgeq` and `edgeq --help` load no torch.
LAZY_OK = {"edgeq/__init__.py", "edgeq/cli.py"}

# Known violations, (file, imported module) -> why it is still here: none left since the
# arm64 (lower_tvm/) and training branches merged. An entry added here must say why, and
# one that no longer matches fails test_known_violations_are_current.
KNOWN: dict[tuple[str, str], str] = {}


def module_of(path: Path) -> tuple[str, str]:
    """(top-level part, dotted module) of a source file, e.g. ("reference", "edgeq.reference.conv")."""
    parts = path.relative_to(REPO).with_suffix("").parts
    dotted = ".".join([ROOTS[parts[0]]] + [p for p in parts[1:] if p != "__init__"])
    top = parts[0] if parts[0] != "edgeq" else (parts[1] if len(parts) > 1 else "__init__")
    return top, dotted


def top_of(module: str) -> str:
    """The top-level part of an imported edgeq module ("edgeq.reference.conv" -> "reference")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(top: str) -> int | None:
    if top in FOUNDATION:
        return 0
    if top in UPSTREAM:
        return 1
    for n, tops in ((2, LAYER2), (3, LAYER3), (4, LAYER4)):
        if top in tops:
            return n
    return None


def edgeq_imports(tree: ast.Module):
    """(line, imported edgeq module, inside a function?) for every edgeq import."""
    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == "edgeq" or a.name.startswith("edgeq."):
                        yield child.lineno, a.name, in_function
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module \
                    and (child.module == "edgeq" or child.module.startswith("edgeq.")):
                if child.module == "edgeq":  # `from edgeq import runtime_c` names a module
                    for a in child.names:
                        yield child.lineno, "edgeq" if a.name == "__version__" else f"edgeq.{a.name}", in_function
                else:
                    yield child.lineno, child.module, in_function
            yield from walk(child, inner)
    yield from walk(tree, False)


def sources() -> list[Path]:
    return sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)


def violations() -> tuple[list[str], set]:
    out, known_seen = [], set()
    for path in sources():
        rel = path.relative_to(REPO).as_posix()
        top, _ = module_of(path)
        mine = layer(top)
        if mine is None:
            out.append(f"{rel}:1: module of {top!r} belongs to no layer (add it to tests/test_layering.py "
                       "and docs/architecture.md)")
            continue
        for line, module, in_function in edgeq_imports(ast.parse(path.read_text(), rel)):
            if (rel, module) in KNOWN:
                known_seen.add((rel, module))
                continue
            theirs_top = top_of(module)
            # the bare package gives only __version__, a constant every layer may read
            theirs = 0 if module == "edgeq" else layer(theirs_top)
            where = f"{rel}:{line}: imports {module}"
            if theirs is None:
                out.append(f"{where}: {theirs_top!r} belongs to no layer")
            elif theirs > mine:
                out.append(f"{where}: {NAMES[mine]} {top!r} must not import {NAMES[theirs]} {theirs_top!r}")
            elif mine == theirs == 1 and theirs_top != top and theirs_top not in UPSTREAM[top]:
                out.append(f"{where}: stage {top!r} may import only its upstream stages "
                           f"{sorted(UPSTREAM[top]) or 'none'}, not {theirs_top!r}")
            if in_function and rel not in LAZY_OK:
                out.append(f"{where} inside a function: import it at the top of the module "
                           "(a cycle is fixed by moving code, not by hiding the import)")
    return out, known_seen


def test_layers_are_one_way():
    found, _ = violations()
    assert not found, "layering violations (docs/architecture.md):\n" + "\n".join(found)


def test_known_violations_are_current():
    _, seen = violations()
    stale = sorted(set(KNOWN) - seen)
    assert not stale, f"KNOWN entries that no longer occur (remove them): {stale}"


def test_the_checker_sees_a_violation(tmp_path):
    """The rules fire on code that breaks them (a test that cannot fail is no test)."""
    tree = ast.parse("from edgeq.targets import get_target\n"
                     "def f():\n    from edgeq.reference import run_node\n")
    found = list(edgeq_imports(tree))
    assert found == [(1, "edgeq.targets", False), (3, "edgeq.reference", True)]
    assert layer(top_of("edgeq.targets")) > layer("reference")
    assert "codegen" not in UPSTREAM["reference"]
