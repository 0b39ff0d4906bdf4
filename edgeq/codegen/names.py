"""The only two forms in which a string from a model file reaches generated C.

ONNX names (graph, nodes, tensors, inputs, outputs) are arbitrary Unicode. Written into C
as they are, a newline, a backslash before a newline (a line splice), `*/`, the trigraph
`??/` (a backslash under -std=c99) or a quote lets a model file put code into the firmware.
So a model string reaches C only

  - as an identifier, `NameTable.get(name, prefix)`: a lowercase prefix such as `in_`, then
    [A-Za-z0-9_] with no `__`, at most MAX_IDENT characters before the uniqueness suffix,
    unique within its table (so never a keyword, a reserved `_X`/`__` name or a macro);
  - as comment text, `comment_text(name)`: only COMMENT_CHARS (no `*`, `\\`, `?`, quote,
    newline or non-ASCII character, so `*/`, `/*`, line splices and trigraphs cannot be
    spelled), `//` collapsed to `/`, at most MAX_COMMENT characters, cut ones ending in "...".

Generated C has no string literals made from model strings; one would take comment_text's
characters too. Every other value substituted into the C templates is an int.
"""
from __future__ import annotations

import re
import string

from edgeq.errors import EdgeqError

MAX_IDENT = 48
MAX_COMMENT = 80
CUT_MARK = "..."
COMMENT_CHARS = frozenset(string.ascii_letters + string.digits + " _.,:;=+-()[]<>/#@")

# C99/C11 keywords without a leading underscore (those are stripped anyway), and C++'s:
# model.h is included from C++ through its extern "C" block.
_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while
    alignas alignof and and_eq asm bitand bitor bool catch char16_t char32_t char8_t class
    compl concept consteval constexpr constinit const_cast co_await co_return co_yield decltype
    delete dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq
    nullptr operator or or_eq private protected public reinterpret_cast requires static_assert
    static_cast template this thread_local throw true try typeid typename using virtual
    wchar_t xor xor_eq
""".split())


def sanitize(name: str, max_len: int = MAX_IDENT) -> str:
    """A valid C identifier resembling `name` (not necessarily unique)."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", str(name))
    ident = re.sub(r"_+", "_", ident).strip("_")  # no leading `_`, no `__`: reserved names
    if not ident or ident[0].isdigit() or ident in _KEYWORDS:
        ident = "t_" + ident
    return ident[:max_len].rstrip("_")


class NameTable:
    """Maps names to unique C identifiers, each behind a lowercase prefix ending in `_`
    ('in_', 'out_', 'l3_'): a prefixed name cannot be a keyword, a reserved name or one of
    the upper-case macros of the headers model.c includes (NULL, INT8_MAX, EQ_OK, ...)."""

    def __init__(self, reserved: set[str] | None = None):
        self._ids: dict[tuple[str, str], str] = {}
        self._used: set[str] = set(reserved or ())

    def get(self, name: str, prefix: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9]*_", prefix):
            raise ValueError(f"identifier prefix {prefix!r} must be lowercase and end in '_'")
        key = (prefix, name)
        if key not in self._ids:
            base = (prefix + sanitize(name))[:MAX_IDENT].rstrip("_")
            ident, k = base, 1
            while ident in self._used or ident in _KEYWORDS:  # e.g. prefix 'co_' + 'await'
                ident, k = f"{base}_{k}", k + 1
            self._used.add(ident)
            self._ids[key] = ident
        return self._ids[key]


def comment_text(text: str, max_len: int = MAX_COMMENT) -> str:
    """`text` as the inside of a C comment: safe characters only, bounded length."""
    text = str(text)
    safe = "".join(c if c in COMMENT_CHARS else "_" for c in text[:max_len])
    safe = re.sub(r"/{2,}", "/", safe)
    if len(text) > max_len:
        safe = safe[:max_len - len(CUT_MARK)] + CUT_MARK
    return safe


def check_plain_c(text: str, what: str) -> str:
    """The last gate on a generated file: printable ASCII and newlines, no backslash, no
    `??`. The model.h/model.c templates use none of these, so one would be a model string
    that bypassed the two forms above."""
    bad = re.search(r"[^\x20-\x7e\n]|\\|\?\?", text)
    if bad:
        raise EdgeqError(f"internal error: the generated {what} holds {bad.group()!r} at offset {bad.start()}",
                         "this is an edgeq bug: please report it with the model")
    return text
