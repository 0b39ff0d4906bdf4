"""The one error type users see: a cause and a fix, printed as one line by the CLI."""
from __future__ import annotations

import unicodedata

# An error names what a model file calls things, and those names are anything: a newline,
# a terminal escape, 10 kB. The line stays one readable line.
NAME_LIMIT = 80
LINE_LIMIT = 2000


def _visible(ch: str) -> str:
    if ch in "\n\r\t" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return ch.encode("unicode_escape").decode("ascii") if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"
    return ch


def one_line(text: str) -> str:
    """Control, format and line-separator characters escaped (\\n, \\x1b, \\u202e)."""
    return "".join(_visible(ch) for ch in text)


def shown(name: str, limit: int = NAME_LIMIT) -> str:
    """A name from a model file as an error shows it: one line, at most `limit` characters."""
    name = one_line(str(name))
    return name if len(name) <= limit else f"{name[:limit - 20]}...({len(name)} chars)"


class EdgeqError(Exception):
    """A problem with the user's input or machine, explained as cause + fix.

    Raise it for anything a user can act on (bad model file, unsupported op, missing
    toolchain, model too big); the CLI prints `error: <cause> (fix: <fix>)` and exits with
    `exit_code` (1), with no traceback. Internal bugs stay ordinary exceptions.
    """

    exit_code = 1

    def __init__(self, cause: str, fix: str = ""):
        cause, fix = one_line(cause), one_line(fix)
        if len(cause) > LINE_LIMIT:  # a long name pasted in whole: keep the start and the end
            cause = f"{cause[:LINE_LIMIT // 2]} ...({len(cause)} chars)... {cause[-LINE_LIMIT // 4:]}"
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} (fix: {self.fix})" if self.fix else self.cause


class CheckMismatch(EdgeqError):
    """A run finished but its outputs differ from the integer reference (`edgeq run --check`,
    a flashed firmware's self-check): the CLI exits 3, so scripts can tell it from an error."""

    exit_code = 3
