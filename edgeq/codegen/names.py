"""C identifiers for graph tensor and node names.

MLPerf Tiny / TFLite-derived names hold '/', ';', ':' and '.', and two different names may
sanitize to the same string, so every name gets a unique identifier, stable for a graph.
"""
from __future__ import annotations

import re

_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while",
}


def sanitize(name: str, max_len: int = 48) -> str:
    """A valid C identifier resembling `name` (not necessarily unique)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    ident = re.sub(r"_+", "_", ident).strip("_") or "t"
    if ident[0].isdigit() or ident in _C_KEYWORDS:
        ident = "t_" + ident
    return ident[:max_len]


class NameTable:
    """Maps names to unique C identifiers with a common prefix (e.g. 'w_', 'p_')."""

    def __init__(self, reserved: set[str] | None = None):
        self._ids: dict[tuple[str, str], str] = {}
        self._used: set[str] = set(reserved or ())

    def get(self, name: str, prefix: str = "") -> str:
        key = (prefix, name)
        if key not in self._ids:
            base = prefix + sanitize(name)
            ident, k = base, 1
            while ident in self._used:
                ident, k = f"{base}_{k}", k + 1
            self._used.add(ident)
            self._ids[key] = ident
        return self._ids[key]
