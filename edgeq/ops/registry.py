"""The registry's mechanics: what a declaration holds, what a stage is, how implementations
are registered and found.

Three namespaces of op names:
- canonical float ops (domain ""): the float graph's ops (docs/float_graph.md);
- integer ops (domain "ai.edgeq"): the quantized graph's ops (docs/semantics.md);
- ONNX op types: what the importer accepts. They are not declared here: each importer
  converter registers under its ONNX op type and says which canonical ops it may emit.

A declaration (`OpDecl`) says what an op *is*. A stage says how it is *done*, one function
per op, registered with a decorator on the function itself:

    @implements("reference", "QConv")
    def qconv(node, x, w, bias=None, mult=None, shift=None): ...

and found again with `lookup("reference", node)`, which raises one EdgeqError naming the
op, the node and the stage when nothing is registered. The registry imports no stage: a
stage package imports its own modules in its __init__ (so using a stage makes it complete),
and `edgeq ops` imports every stage before printing the table.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from edgeq.errors import EdgeqError

REQUIRED = object()  # an attribute every node of the op carries (no default)
AXIS_RULES = ("any", "last")
_DOMAINS = {"float": "", "integer": "ai.edgeq"}  # namespace -> domain of its declarations


@dataclass(frozen=True)
class Attr:
    """One node attribute. `onnx`: a float op's attribute that ONNX defines under the same
    name, so graphio writes it as an ONNX attribute (the others go into edgeq's metadata)."""
    name: str
    kind: str                     # int | float | ints | floats | str
    default: Any = REQUIRED
    onnx: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Input:
    """One input. `const`: must be a constant tensor (weights, bias, integer parameters,
    tables). `optional`: may be "" or absent at the end. `variadic`: one or more (Concat)."""
    name: str
    const: bool = False
    optional: bool = False
    variadic: bool = False


# A property is a bool, or a predicate on (node, graph) for ops where it depends on the
# node's attributes or shapes (an average pool commutes with a shift only without padding).
Property = bool | Callable[[Any, Any], bool]


@dataclass(frozen=True)
class OpDecl:
    name: str
    domain: str                   # "" (canonical float) | "ai.edgeq" (integer)
    doc: str
    inputs: tuple[Input, ...]
    attrs: tuple[Attr, ...] = ()
    # output shape from the input shapes (constants included) and the attributes
    shape: Callable[[list[tuple], Mapping], tuple] | None = None
    # The properties passes, planners and lowerings ask about, each replacing a list of
    # op names that used to live in the pass (docs/architecture.md, "the registry"):
    weighted: bool = False        # inputs[1] is a weight [Co, ...] (output channels on axis 0), inputs[2] its bias [Co]
    keeps_range: bool = False     # every output value is an input value (data-free ranges pass through)
    channel_scale_commutes: Property = False  # f(s x) = s f(x) for a positive per-channel s, channels kept
    channel_shift_commutes: Property = False  # f(x + c) = f(x) + c for a per-channel constant c, channels kept
    clamp_fusable: bool = False   # applies an output clamp act_min/act_max itself (fuse_activation's producers)
    combines: bool = False        # the output shape comes from several inputs (broadcast, concatenated)
    as_clamp: Callable[[Any], tuple[float, float]] | None = None  # the op IS a clamp: (lo, hi) of a node
    float_fn: Callable[[Any, Mapping], Any] | None = None  # float64 numpy semantics f(x, attrs), unary elementwise ops
    axis: str | None = None       # which values the `axis` attribute may take: "any" | "last"
    inplace_inputs: tuple[int, ...] = ()  # inputs every implementation may overwrite with the output
    alias: bool = False           # the output is the input's bytes reinterpreted (no data moves)

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attrs)

    def required_attrs(self) -> list[str]:
        return [a.name for a in self.attrs if a.required]

    def arity(self) -> tuple[int, float]:
        """(fewest, most) inputs a node may have: an optional input before a required one
        is written as "" (a placeholder), so only optional inputs at the end may be absent."""
        fewest = max((k + 1 for k, i in enumerate(self.inputs) if not i.optional), default=0)
        most = float("inf") if any(i.variadic for i in self.inputs) else len(self.inputs)
        return fewest, most

    def input_spec(self, k: int) -> Input:
        return self.inputs[min(k, len(self.inputs) - 1)] if self.inputs[-1].variadic else self.inputs[k]

    def holds(self, prop: str, node, graph=None) -> bool:
        value = getattr(self, prop)
        return bool(value(node, graph) if callable(value) else value)

    def axis_problem(self, axis: int, rank: int) -> str | None:
        """Why `axis` is not allowed for an input of `rank` (None: it is)."""
        if self.axis is None:
            return None
        if not 0 <= int(axis) < rank:
            return f"axis {axis} is outside a rank-{rank} tensor"
        if self.axis == "last" and int(axis) != rank - 1:
            return f"axis {axis} of a rank-{rank} tensor is not the last axis (only the last axis is supported)"
        return None


@dataclass(frozen=True)
class Stage:
    """One per-op stage of the compiler. `keyed_by`: the namespace of op names it is keyed
    by (onnx | float | integer). `what`: one implementation, for messages ("C kernel").
    `fix`: what a user can do when an op has none. `variants`: several implementations of
    one op, told apart by the meta key `variant_key` (the C stage's kernel per ISA, layout
    and weight bits). `expected`: the completeness test requires one for every op of the
    namespace (stages the open issues add are listed, but not expected yet)."""
    name: str
    keyed_by: str
    what: str
    fix: str
    package: str                  # the module whose import registers the implementations
    variants: bool = False
    variant_key: str | None = None
    expected: bool = True
    emits_into: str | None = None  # the namespace of the ops an implementation declares it `emits=`
    note: str = ""


@dataclass(frozen=True)
class Impl:
    stage: str
    op: str
    fn: Callable
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


class Registry:
    """Declarations by name and domain, stages by name, implementations by stage and op."""

    def __init__(self):
        self.decls: dict[tuple[str, str], OpDecl] = {}
        self.stages: dict[str, Stage] = {}
        self.impls: dict[str, dict[str, list[Impl]]] = {}

    # ---- declarations ---------------------------------------------------------------
    def declare(self, decl: OpDecl) -> OpDecl:
        key = (decl.domain, decl.name)
        if key in self.decls:
            raise ValueError(f"op {decl.name!r} (domain {decl.domain!r}) is declared twice")
        if decl.axis is not None and decl.axis not in AXIS_RULES:
            raise ValueError(f"{decl.name}: axis rule {decl.axis!r} is not one of {AXIS_RULES}")
        self.decls[key] = decl
        return decl

    def ops(self, domain: str) -> dict[str, OpDecl]:
        return {name: d for (dom, name), d in self.decls.items() if dom == domain}

    def decl(self, op: str, domain: str) -> OpDecl | None:
        return self.decls.get((domain, op))

    # ---- stages -------------------------------------------------------------------------
    def add_stage(self, stage: Stage) -> Stage:
        self.stages[stage.name] = stage
        self.impls.setdefault(stage.name, {})
        return stage

    def stage(self, name: str) -> Stage:
        if name not in self.stages:
            raise KeyError(f"no stage {name!r} (stages: {', '.join(self.stages)})")
        return self.stages[name]

    # ---- implementations --------------------------------------------------------------
    def register(self, stage: str, op: str, fn: Callable, meta: Mapping[str, Any]) -> Impl:
        st = self.stage(stage)
        self._check_op(st, op, fn, meta)
        impl = Impl(stage, op, fn, MappingProxyType(dict(meta)))
        have = self.impls[stage].setdefault(op, [])
        if st.variants:
            if st.variant_key not in meta:
                raise ValueError(f"{impl.where}: stage {stage!r} needs `{st.variant_key}=` for {op}")
            same = [i for i in have if i.meta[st.variant_key] == meta[st.variant_key]]
        else:
            same = have
        if same:
            raise ValueError(f"{op} has two {st.what}s: {same[0].where} and {impl.where}")
        have.append(impl)
        return impl

    def _check_op(self, st: Stage, op: str, fn: Callable, meta: Mapping[str, Any]) -> None:
        """A typo in an op name fails when the module is imported, not in a user's compile."""
        where = f"{fn.__module__}.{fn.__qualname__}"
        for namespace, names in ((st.keyed_by, [op]), (st.emits_into, meta.get("emits", ()))):
            domain = _DOMAINS.get(namespace)
            unknown = [n for n in names if domain is not None and (domain, n) not in self.decls]
            if unknown:
                raise ValueError(f"{where} ({st.name} stage) names undeclared {namespace} ops "
                                 f"{unknown} (declare them in edgeq/ops)")

    def implementations(self, stage: str, op: str) -> list[Impl]:
        self.stage(stage)
        return list(self.impls[stage].get(op, []))

    def implemented(self, stage: str) -> dict[str, list[Impl]]:
        self.stage(stage)
        return {op: list(v) for op, v in self.impls[stage].items() if v}


def missing(stage: Stage, op: str, node_name: str | None, extra: str = "") -> EdgeqError:
    where = f" (node {node_name!r})" if node_name else ""
    return EdgeqError(f"no {stage.what} for op {op}{where}{extra}", stage.fix)


REGISTRY = Registry()  # the one registry: declarations, stages and implementations


def import_submodules(package: str, path) -> None:
    """Import every module of a stage package, in name order: the package's __init__ calls
    it last, so that a new implementation file registers itself (no list to extend)."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        importlib.import_module(f"{package}.{info.name}")
