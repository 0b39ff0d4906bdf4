"""One fuzz case (a mutated model and the files around it) and the mutation registry.

A mutation is a function `(case, rng) -> None` that edits `case.model` (a ModelProto)
in place, may add files, and says what it did in `case.notes`; it raises NotApplicable
when the model has nothing it can act on (the generator then draws another kind).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx

MODEL_DIR = "model"      # the case's model lives in CASE/model/; CASE/ holds what is outside it
MODEL_FILE = "case.onnx"
SECRET = "secret.bin"    # a file outside the model's folder: reading it is an escape


class NotApplicable(Exception):
    pass


@dataclass
class Case:
    index: int
    seed_name: str
    model: onnx.ModelProto
    kind: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)    # next to the model (relative paths)
    outside: dict[str, bytes] = field(default_factory=dict)  # in the case folder, outside the model's
    symlinks: dict[str, str] = field(default_factory=dict)   # name in the model folder -> link target
    raw: bytes | None = None   # the file's bytes when a mutation works below protobuf
    # "valid": the mutation keeps the model's meaning, so it must still build;
    # "reject": an attack (data from outside the model's folder), so it must not build.
    expect: str = ""
    target: str = "reference"

    def note(self, text: str) -> None:
        self.notes.append(text if len(text) <= 300 else text[:297] + "...")

    def model_bytes(self) -> bytes:
        return self.raw if self.raw is not None else self.model.SerializeToString()


Mutation = Callable[[Case, np.random.Generator], None]
MUTATIONS: dict[str, Mutation] = {}


def mutation(name: str):
    def register(fn: Mutation) -> Mutation:
        MUTATIONS[name] = fn
        return fn
    return register


# ---- value pools: the edges where parsers and shape code break --------------------------

BAD_INTS = [0, -1, -2, 1, 2, 3, 7, 255, 2**31 - 1, -2**31, 2**31, 2**32 + 1, 2**40, 2**62, -2**63, 2**63 - 1]
BAD_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, -1.0, 1e10, 3.4e38, -3.4e38]
BAD_DIMS = [0, -1, -7, 3, 65536, 1000003, 2**31, 2**40, 2**62, 2**63 - 1]
BAD_STRINGS = ["", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "garbage", "reflect", "edge", "wrap",
               "constant", "\x00", "\u202e", "\xe9", "a" * 10000]
# Names a model may carry: each must be accepted (names have no meaning) and must never
# break an error line, a generated file or a C comment.
HOSTILE_NAMES = ['"', "'", "\\", "a\nb", "*/", "/*", "??/", "??=", "x*\\\n/ int evil; //", "[bold]x[/]", "[/]",
                 "%s%n", "{0}", "../../etc/passwd", "nul\x00byte", "\x1b[31mred", "\u00fc\u540d\u524d",
                 "\u202eevil", "a" * 10000, " ", "con", "a b", "#define X 1", "$(touch /tmp/pwned)",
                 "x; rm -rf ~", "<script>", "\r", "\t", "/", ".", "..", "\u2028", "\ud7ff"]


def pick(rng: np.random.Generator, seq):
    seq = list(seq)
    if not seq:
        raise NotApplicable("nothing to pick")
    return seq[int(rng.integers(len(seq)))]


def chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


# ---- model queries ----------------------------------------------------------------------

def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (what the user feeds)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def tensor_names(model: onnx.ModelProto) -> list[str]:
    """Every tensor name the graph uses, in file order, without repeats."""
    g = model.graph
    names = [i.name for i in g.input] + [i.name for i in g.initializer]
    for n in g.node:
        names += list(n.input) + list(n.output)
    names += [o.name for o in g.output]
    return list(dict.fromkeys(n for n in names if n))


def rename_tensor(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it appears (a meaning-preserving edit when `new` is free)."""
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name == old:
            vi.name = new
    for t in g.initializer:
        if t.name == old:
            t.name = new
    for sp in g.sparse_initializer:
        if sp.values.name == old:
            sp.values.name = new
    for n in g.node:
        n.input[:] = [new if i == old else i for i in n.input]
        n.output[:] = [new if o == old else o for o in n.output]


def nodes_with_attrs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.attribute]


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 13
