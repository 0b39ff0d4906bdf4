"""Names from a model file are data: they reach generated C only as sanitized identifiers
or whitelisted comment text (edgeq/codegen/names.py), the .tflite only as flatbuffer
strings, and plots and terminal tables only as plain text.

Every hostile name below carries a payload that, once out of its comment, compiles into a
`used` string; the proof is that the preprocessed model.c (comments gone) and model.o of a
model with every name hostile equal those of the same model with plain names, byte for
byte, and that the build still passes its self-check with -Werror.
"""
from __future__ import annotations

import copy
import re
import shutil
import string
import subprocess

import onnx
import pytest

from edgeq import runtime_c
from edgeq.codegen.names import (COMMENT_CHARS, CUT_MARK, MAX_COMMENT, MAX_IDENT, NameTable,
                                 check_plain_c, comment_text, sanitize)
from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node

from .test_codegen_host import check_target, host, qgraph_all_ops

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc is missing")

PAYLOAD = 'static const char m[] __attribute__((used)) = "INJECTED";'
TRIGRAPHS = ["??" + c for c in "=/'()!<>-"]
CONTROLS = "".join(chr(c) for c in range(1, 32)) + "\x7f"
# the reproduction: `*\` + newline + `/` ends the layer comment through a line splice
FLATTEN_NAME = 'flatten*\\\n/ { static const char m[] __attribute__((used)) = "INJECTED"; (void)m; } //'
KEYWORDS = ["int", "while", "class", "_Bool", "__x", "_X", "INT8_MAX", "NULL", "input", "output",
            "inputs", "edgeq_arena", "EQ_OK"]


def hostile_names() -> list[str]:
    """Each way out of a C comment (or into the preprocessor) around the payload, and names
    that are long, non-ASCII, keywords, or collide once sanitized."""
    escapes = ['"', "'", "\\", "\n", "\r", "\r\n", "*/", "/*", "//", "*\\\n/", "*??/\n/", "??/\n",
               *TRIGRAPHS, "#", "\n#define x\n", CONTROLS, "é", "中文", "\u202e", "\u200f", "\ufeff"]
    names = [f"{e}*/ {PAYLOAD} /*{e}" for e in escapes] + [FLATTEN_NAME]
    names += ["x" * 10240 + "*/" + PAYLOAD, "a/b", "a;b", "a b", "a__b", "3d", *KEYWORDS]
    return names


def fresh(names: list[str]):
    """A function giving each old name a hostile one, unique (repeats get a counter)."""
    table: dict[str, str] = {}

    def rename(old: str) -> str:
        if old and old not in table:
            k = len(table)
            table[old] = names[k % len(names)] + ("" if k < len(names) else f" #{k}")
        return table.get(old, old)
    return rename


# ---- the two forms -------------------------------------------------------------------------

@pytest.mark.parametrize("name", hostile_names() + ["", "//////", "?" * 90, "a" * 79, "a" * 81])
def test_comment_text_is_whitelisted_and_bounded(name):
    text = comment_text(name)
    assert set(text) <= COMMENT_CHARS and len(text) <= MAX_COMMENT
    for bad in ("*/", "/*", "//", "??", "\\"):
        assert bad not in text
    assert text.endswith(CUT_MARK) == (len(name) > MAX_COMMENT)
    assert check_plain_c(f"/* {text} */\n", "comment") == f"/* {text} */\n"


def test_comment_text_keeps_ordinary_names():
    assert comment_text("model/conv2d;BiasAdd:0") == "model/conv2d;BiasAdd:0"
    assert comment_text("/features/features.0/Conv [1, 8]") == "/features/features.0/Conv [1, 8]"
    assert comment_text("a*/b") == "a_/b" and comment_text("a//b") == "a/b"
    assert comment_text("x" * 100) == "x" * (MAX_COMMENT - 3) + "..."


@pytest.mark.parametrize("name", hostile_names() + ["", "_", "9", "t_", "a_" * 40])
def test_identifiers_follow_the_rule(name):
    ident = NameTable().get(name, "in_")
    assert re.fullmatch(r"in_[A-Za-z0-9_]*", ident) and len(ident) <= MAX_IDENT
    assert "__" not in ident and not ident.endswith("_")
    assert re.fullmatch(r"[A-Za-z0-9_]*", sanitize(name)) and not sanitize(name)[:1].isdigit()


def test_name_table_is_unique_per_scope_and_avoids_reserved():
    t = NameTable({"input", "in_a_b"})
    ids = [t.get(n, "in_") for n in ("a/b", "a;b", "a b", "a__b", "a/b")]
    assert ids[0] == ids[-1] and len(set(ids[:4])) == 4 and "in_a_b" not in ids
    assert t.get("x", "out_") != t.get("x", "in_")
    assert t.get("await", "co_") == "co_await_1" and t.get("eq", "and_") == "and_eq_1"  # C++ keywords
    with pytest.raises(ValueError):
        t.get("x", "")  # an unprefixed model name could be a keyword or a macro (NULL)


def test_last_gate_rejects_what_comments_cannot_hold():
    for text in ("/* a *\\\n/ */", "/* ??/ */", "/* é */", "/* \r */"):
        with pytest.raises(EdgeqError, match="internal error"):
            check_plain_c(text, "model.c")


# ---- real builds ---------------------------------------------------------------------------

def preprocessed(src) -> str:
    """model.c after the preprocessor: comments and splices gone, what the compiler sees."""
    res = subprocess.run(["gcc", "-E", "-P", "-std=c99", f"-I{src}", f"-I{runtime_c.include_dir()}",
                          str(src / "model.c")], capture_output=True, text=True, check=True)
    return res.stdout


def compile_host(model, out):
    from edgeq.driver.pipeline import CompileOptions, compile_model
    res = compile_model(model, CompileOptions(target="host", progress=False), out, log=lambda _: None)
    assert res.report["self_check"]["passed"], res.report["self_check"]
    return out / "src"


def test_flatten_name_injection_is_inert(tmp_path):
    """The issue's model: a Flatten node whose name splices its way out of the comment."""
    from edgeq.models.registry import model_path
    m = onnx.load(str(model_path("dscnn")))
    flatten = next(n for n in m.graph.node if n.op_type == "Flatten")
    flatten.name = FLATTEN_NAME
    onnx.save(m, tmp_path / "evil.onnx")
    src = compile_host(tmp_path / "evil.onnx", tmp_path / "out")
    assert b"INJECTED" not in (src / "model.o").read_bytes()
    assert "INJECTED" not in preprocessed(src)


@pytest.fixture(scope="module")
def plain_dscnn(tmp_path_factory):
    from edgeq.models.registry import model_path
    return compile_host(model_path("dscnn"), tmp_path_factory.mktemp("plain") / "out")


@pytest.fixture(scope="module")
def hostile_dscnn(tmp_path_factory):
    """fmnist_dscnn with every node, tensor, input, output and graph name hostile."""
    from edgeq.models.registry import model_path
    m = onnx.load(str(model_path("dscnn")))
    g, rename = m.graph, fresh(hostile_names())
    g.name = hostile_names()[0]
    for k, n in enumerate(g.node):
        n.name = hostile_names()[-1 - k % len(hostile_names())] + f" {k}"
        n.input[:] = [rename(t) for t in n.input]
        n.output[:] = [rename(t) for t in n.output]
    for t in g.initializer:
        t.name = rename(t.name)
    for v in [*g.input, *g.output, *g.value_info]:
        v.name = rename(v.name)
    onnx.checker.check_model(m)
    path = tmp_path_factory.mktemp("hostile") / "hostile.onnx"
    onnx.save(m, path)
    return path


def test_every_name_hostile_in_a_real_model(hostile_dscnn, plain_dscnn, tmp_path):
    """The compiler sees exactly the plain model's code, and the object is the same bytes."""
    src = compile_host(hostile_dscnn, tmp_path / "out")
    assert "\\" not in (src / "model.c").read_text()
    assert preprocessed(src) == preprocessed(plain_dscnn)
    assert (src / "model.o").read_bytes() == (plain_dscnn / "model.o").read_bytes()


def test_hostile_names_are_data_in_the_tflite_export(hostile_dscnn, tmp_path):
    """The .tflite keeps names as flatbuffer strings (data): it loads and is bit-exact in
    LiteRT and TFLite Micro."""
    pytest.importorskip("ai_edge_litert")
    from edgeq.driver.pipeline import CompileOptions, compile_model
    res = compile_model(hostile_dscnn, CompileOptions(target="tflite", progress=False), tmp_path / "out",
                        log=lambda _: None)
    check = res.report["self_check"]
    assert check["passed"] and check["litert"] == check["tflm"] == "bit-identical"
    assert PAYLOAD.encode() in (tmp_path / "out" / "model.tflite").read_bytes()


def rename_graph(g: Graph, names: list[str]) -> Graph:
    """The same graph with every tensor and node name (and its own) from `names`."""
    names = list(dict.fromkeys(names))  # distinct old names must stay distinct
    rename = fresh(names)
    out = Graph(names[0])
    for t in g.tensors.values():
        t2 = copy.copy(t)
        t2.name = rename(t.name)
        out.add_tensor(t2)
    for k, n in enumerate(g.nodes):
        out.nodes.append(Node(n.op, names[-1 - k % len(names)] + f" {k}", [rename(i) for i in n.inputs],
                              [rename(o) for o in n.outputs], dict(n.attrs), n.domain))
    out.inputs, out.outputs = [rename(i) for i in g.inputs], [rename(o) for o in g.outputs]
    return out


def run_params(code: str) -> list[str]:
    """The parameter names of edgeq_model_run, the only identifiers made from model names."""
    sig = re.search(r"int edgeq_model_run\(([^)]*)\)", code).group(1)
    return [p.split("*")[-1].strip() for p in sig.split(",")]


def numbered(code: str, params: list[str]) -> str:
    return re.sub(r"\b\w+\b", lambda m: f"P{params.index(m[0])}" if m[0] in params else m[0], code)


def test_every_emitter_with_hostile_names(tmp_path):
    """Every op's emitter, 18 inputs and 18 outputs with hostile names (identifiers made
    from them, some colliding once sanitized): builds with -Werror, self-checks, runs, and
    differs from the plain graph's code only in the names of edgeq_model_run's parameters."""
    plain = qgraph_all_ops()
    evil = rename_graph(plain, ["a/b", "a;b", "a b", *hostile_names()])
    check_target(host(), plain, tmp_path / "plain")
    check_target(host(), evil, tmp_path / "evil")
    code = {k: preprocessed(tmp_path / k / "src") for k in ("plain", "evil")}
    params = {k: run_params(c) for k, c in code.items()}
    assert len(set(params["evil"])) == len(plain.inputs) + len(plain.outputs)
    assert all(re.fullmatch(r"(in|out)_[A-Za-z0-9_]+", p) and "__" not in p for p in params["evil"])
    assert numbered(code["plain"], params["plain"]) == numbered(code["evil"], params["evil"])
    assert b"INJECTED" not in (tmp_path / "evil" / "src" / "model.o").read_bytes()


def test_hostile_layer_names_in_the_memory_plot(tmp_path):
    """MCU builds draw layer names: `$` must not start matplotlib's mathtext parser."""
    from types import SimpleNamespace
    from edgeq.planning.memory_plan import plot_timeline
    plan = SimpleNamespace(timeline=[1, 2, 3, 4], arena_bytes=8)
    plot_timeline(plan, ["$\\frac{$", "a$b$c", "\x01\n" + string.punctuation], tmp_path / "t.png", 64)
    assert (tmp_path / "t.png").stat().st_size > 0



def test_hostile_layer_names_in_the_terminal_tables():
    """`edgeq inspect` prints names as plain text: no rich markup, no escape sequences."""
    import io
    from rich.console import Console
    from edgeq.report.summary import layer_table
    rows = [{"name": name, "op": "Conv", "output_shape": [1, 2], "macs": 0, "weight_bits": None,
             "act_bits": 8} for name in ("[/]x[link=y]", "\x1b[31mred\x1b[0m", "[bold]b")]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(layer_table(rows, "t"))
    text = out.getvalue()
    assert "[/]x[link=y]" in text and "[bold]b" in text and "\x1b" not in text
