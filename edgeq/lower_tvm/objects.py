"""A scheduled TVM PrimFunc -> a freestanding aarch64 object file with one plain C function.

TVM's LLVM backend wraps every PrimFunc in its packed-call ABI (`__tvm_ffi_<name>`: type
and shape checks on DLTensor arguments, errors reported through the TVM FFI runtime) and
puts the computation itself in an internal function `<name>_compute_` whose parameters are
the raw data pointers, in the PrimFunc's parameter order. We keep only that function:

1. `tvm.compile` the function for the CPU's LLVM target;
2. take the optimized LLVM IR text, rename `<name>_compute_` to the kernel's symbol with
   external linkage and the C calling convention (it was `internal fastcc`), and delete
   every other function (the packed wrapper, its error helpers, TVM's fp16 conversion
   helpers) and the strings only they used;
3. let TVM's own LLVM parse that IR and write the object (the system llc is older than
   TVM's LLVM and cannot read its IR).

The object then defines exactly one global symbol and references nothing of TVM, libc
or libstdc++ but possibly `memset` / `memcpy` (LLVM turns long fills and copies, e.g. a
padded input, into calls to them; any C library has them, and `build_object` refuses
anything else). Objects are cached by the hash of what determines them (the op's
parameters, the CPU, TVM's version and the generator's own source), so a model recompiles
only the layers it has not seen before, and a changed generator never reuses an object.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from edgeq.errors import EdgeqError
from edgeq.targets.c_project import cache_dir as edgeq_cache

def cache_dir() -> Path:
    d = edgeq_cache() / "tvm"
    d.mkdir(parents=True, exist_ok=True)
    return d


# Modules that do not shape a kernel's object (the model around the kernels, the test
# harness, the registration package): editing them keeps the cached objects.
NOT_GENERATOR = {"__init__.py", "model.py", "harness.py", "layouts.py"}


@lru_cache(maxsize=None)
def generator_digest() -> str:
    """Hash of the kernel generator's Python sources: part of every cache key."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.parent == root and path.name in NOT_GENERATOR:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def kernel_hash(key: dict) -> str:
    import tvm
    blob = json.dumps({"key": key, "tvm": tvm.__version__, "generator": generator_digest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_object(symbol: str) -> Path:
    return cache_dir() / f"{symbol}.o"


def build_object(func, symbol: str, target: dict, out: Path) -> Path:
    """Compile `func` (a scheduled PrimFunc) to `out`, an object defining `symbol`, a C
    function of the PrimFunc's parameters (raw pointers) in their order."""
    import tvm
    mod = tvm.IRModule({symbol: func.with_attr("global_symbol", symbol)})
    try:
        ll = tvm.compile(mod, target=tvm.target.Target(target)).mod.inspect_source("ll")
    except Exception as e:  # TVM raises its own error types; name the kernel
        raise EdgeqError(f"TVM failed to compile kernel {symbol}: {str(e).splitlines()[0][:300]}",
                         "this is an edgeq bug: please report it with the model") from e
    ll = keep_only_compute(ll, symbol, [p.name for p in func.params])
    if "TVMBackend" in ll:
        # TVM 0.27 puts "local"-scope buffers (and some others) in a heap workspace it
        # asks its runtime for; the kernels keep every temporary in "global" scope, which
        # small constant-size buffers get as stack arrays. Refuse what would call out.
        raise EdgeqError(f"kernel {symbol} asks TVM's runtime for a workspace",
                         "this is an edgeq bug (a schedule left a buffer in local scope)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{symbol}.ll"
        path.write_text(ll)
        tmp_obj = Path(tmp) / f"{symbol}.o"
        tvm.runtime.load_module(str(path)).write_to_file(str(tmp_obj))
        stray = undefined_symbols(tmp_obj) - ALLOWED_UNDEFINED
        if stray:
            raise EdgeqError(f"kernel {symbol} needs {sorted(stray)}, which edgeq does not provide",
                             "this is an edgeq bug: please report it")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(tmp_obj.read_bytes())
        os.replace(partial, out)  # atomic: two builds of one kernel may race
    return out


ALLOWED_UNDEFINED = {"memset", "memcpy", "memmove"}


def undefined_symbols(obj: Path) -> set[str]:
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name for s in symtab.iter_symbols()
                if s.name and s["st_shndx"] == "SHN_UNDEF"} if symtab else set()


_DEFINE = re.compile(r"^define\b[^@]*@(\"[^\"]+\"|[\w.$]+)\(", re.M)


def keep_only_compute(ll: str, symbol: str, arg_names: list[str]) -> str:
    """LLVM IR of TVM's module -> IR whose only global is `void symbol(<arg_names>)`.

    TVM's `<symbol>_compute_` takes the raw data pointers, but only of the buffers it
    reads or writes (an unused one, e.g. the left shifts of a layer without any, is
    dropped) and sometimes a leading `i32 dev_id`. So it stays as an internal function,
    renamed `<symbol>_body`, and a small external `symbol` taking every argument in the
    kernel's order calls it with the ones it wants (dev_id = 0, the CPU)."""
    compute, body = f"{symbol}_compute_", f"{symbol}_body"
    chunks, pos = [], 0
    for m in _DEFINE.finditer(ll):
        end = ll.index("\n}\n", m.start()) + 3
        chunks.append((m.start(), end, m.group(1).strip('"')))
    if compute not in {c[2] for c in chunks}:
        raise EdgeqError(f"TVM's IR for {symbol} has no {compute} function",
                         "this TVM version lowers differently: pin apache-tvm==0.27.0.post1")
    out, signature = [], None
    for start, end, name in chunks:
        out.append(ll[pos:start])
        if name == compute:
            out.append(ll[start:end])
            signature = ll[start:ll.index("\n", start)].replace(f"@{compute}(", f"@{body}(")
        pos = end
    out.append(ll[pos:])
    text = "".join(out).replace(f"@{compute}(", f"@{body}(")
    text += _wrapper(symbol, body, signature, arg_names)
    return _drop_unused_globals(text)


def _split_params(params: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in params:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + ([cur.strip()] if cur.strip() else [])


def _wrapper(symbol: str, body: str, signature: str, arg_names: list[str]) -> str:
    head, _, rest = signature.partition(f"@{body}(")
    ret = head.split()[-1]
    depth, i = 1, 0
    while depth:
        depth += {"(": 1, ")": -1}.get(rest[i], 0)
        i += 1
    call_args, loads = [], []
    for k, p in enumerate(_split_params(rest[:i - 1])):
        ty, name = p.split()[0], p.split()[-1].lstrip("%")
        promoted = re.fullmatch(r"(\w+)\.(\d+)\.val", name)
        if ty == "ptr" and name in arg_names:
            call_args.append(f"ptr %{name}")
        elif ty == "i32" and name == "dev_id":
            call_args.append("i32 0")
        elif promoted and promoted.group(1) in arg_names:
            # LLVM's argument promotion passes a small buffer read once by value
            # (`<16 x i32> %bias.0.val`): load it here from the caller's pointer
            vec_ty = p[:p.index(">") + 1] if p.startswith("<") else ty
            src, offset = promoted.group(1), int(promoted.group(2))
            loads.append(f"  %a{k}.ptr = getelementptr i8, ptr %{src}, i64 {offset}\n"
                         f"  %a{k} = load {vec_ty}, ptr %a{k}.ptr, align 1\n")
            call_args.append(f"{vec_ty} %a{k}")
        else:
            raise EdgeqError(f"kernel {symbol}: unexpected parameter {p!r} in TVM's IR",
                             "this is an edgeq bug: please report it")
    params = ", ".join(f"ptr %{a}" for a in arg_names)
    cc = "fastcc " if "fastcc" in head.split() else ""
    result = "" if ret == "void" else "%r = "
    return (f"\ndefine void @{symbol}({params}) {{\nentry:\n{''.join(loads)}"
            f"  {result}call {cc}{ret} @{body}({', '.join(call_args)})\n  ret void\n}}\n")


_PRIVATE_GLOBAL = re.compile(r"^(@[\w.$]+) = (?:private|internal) .*$", re.M)


def _drop_unused_globals(text: str) -> str:
    """Remove private constants (error strings) no remaining function refers to."""
    for m in list(_PRIVATE_GLOBAL.finditer(text)):
        name = m.group(1)
        if len(re.findall(re.escape(name) + r"(?![\w.$])", text)) == 1:
            text = text.replace(m.group(0) + "\n", "", 1)
    return text


_BUFFER_PARAM = re.compile(r'T\.Buffer\(\(([^()]*)\), "(\w+)"\)')


def prim_func(tensors: list, offset_factor: int = 0, init: dict[str, str] | None = None):
    """te.create_prim_func over `tensors` with every parameter buffer declared 1-byte
    aligned. TE gives parameters 64-byte alignment, which TVM passes on to LLVM as an
    assumption about the pointers; edgeq's arena offsets are only 16-byte aligned (and
    aliases inside it less), so the assumption would be false. TE has no option for it,
    hence the round trip through TVMScript text (before any scheduling). offset_factor=1
    lets the buffers start anywhere (tensor intrinsic descriptions need it).

    `init` maps a reduction block to the TVMScript value its accumulator starts from
    (e.g. {"acc": "bias[v_j]"}): TE's own `init=` is dropped by create_prim_func, and a
    bias there saves an add per output in the epilogue."""
    import tvm
    from tvm import te
    text = te.create_prim_func(tensors).script()
    head, sep, body = text.partition("):\n")
    extra = f", offset_factor={offset_factor}" if offset_factor else ""
    head = _BUFFER_PARAM.sub(rf'T.Buffer((\1), "\2", align=1{extra})', head)
    for block, value in (init or {}).items():
        body = _with_init(body, block, value)
    return tvm.script.from_source(head + sep + body)


def _with_init(body: str, block: str, value: str) -> str:
    """Make `block`'s reduction start from `value` instead of 0 (and read it)."""
    start = body.index(f'with T.sblock("{block}"):')
    end = body.find("with T.sblock(", start + 1)
    end = len(body) if end < 0 else end
    seg = body[start:end]
    seg, n_reads = re.subn(r"(T\.reads\(.*)(\)\n)", lambda m: f"{m.group(1)}, {value}{m.group(2)}", seg, count=1)
    seg, n_init = re.subn(r"(with T\.init\(\):\n\s+\w+\[[^\]]*\] = )0\n", lambda m: f"{m.group(1)}{value}\n", seg, count=1)
    if (n_reads, n_init) != (1, 1):
        raise EdgeqError(f"could not start the reduction of {block} at {value}", "this is an edgeq bug")
    return body[:start] + seg + body[end:]
