"""The requantization epilogue as a NEON micro-kernel: 8 or 16 outputs per call.

Vectorized by TVM, the requantization runs 4 lanes at a time to the end (the NEON
multiply-high intrinsics are int32x4), so the clamp and the narrowing to int8 cost
about 5 instructions per 4 outputs. This intrinsic takes a run of accumulators of one
pixel (bias included: the reductions start from it) and finishes them in registers the way hand-written NEON does: per 4 lanes
sqrdmulh, and, sshr, sqadd, srshl; then `sqxtn` to int16 (saturating), `sqadd` of the
zero point in int16, `sqxtn` to int8 and one smax/smin on 8 or 16 lanes.

That equals clamp(v + y_zp, act_min, act_max) for every int32 v: if |v| < 32640 nothing
saturates on the way; otherwise v + y_zp lies beyond [-128, 127] and both forms give the
clamp bound (act_min and act_max are int8, y_zp in [-128, 127]).

Its description is the kernel's own TE requantization (edgeq.lower_tvm.requant, NEON
form) over a run of `lanes` channels, so `tensorize` matches it structurally and the
run's semantics stay defined in one place. One intrinsic is registered per set of
(lanes, y_zp, act_min, act_max, with_left).
"""
from __future__ import annotations

from string import Template

from edgeq.lower_tvm import requant as rq
from edgeq.lower_tvm.objects import prim_func

_REGISTERED: set[str] = set()

DESC = Template('''
@T.prim_func(s_tir=True)
def desc($handles):
$matches
    with T.sblock("root"):
        T.reads($reads)
        T.writes(y[0:$lanes])
        for j in range($lanes):
            with T.sblock("y"):
                v_j = T.axis.spatial($lanes, j)
                T.reads($reads_j)
                T.writes(y[v_j])
                $statement
''')

IMPL = Template('''
@T.prim_func(s_tir=True)
def impl(a: T.handle, m: T.handle, ls: T.handle, rs: T.handle, o: T.handle):
    ACC = T.match_buffer(a, ($lanes,), "int32", offset_factor=1, align=1)
    MULT = T.match_buffer(m, ($lanes,), "int32", offset_factor=1, align=1)
    LSH = T.match_buffer(ls, ($lanes,), "int32", offset_factor=1, align=1)
    RSH = T.match_buffer(rs, ($lanes,), "int32", offset_factor=1, align=1)
    Y = T.match_buffer(o, ($lanes,), "int8", offset_factor=1, align=1)
    with T.sblock("root"):
        T.reads(ACC[0:$lanes], MULT[0:$lanes], LSH[0:$lanes], RSH[0:$lanes])
        T.writes(Y[0:$lanes])
        Y[T.ramp(T.int32(0), 1, $lanes)] = $result
''')


def _quarter(q: int, with_left: bool, form: str) -> str:
    """TVMScript for lanes 4q..4q+3 after the rounding shift (int32x4)."""
    s = f"[{4 * q}]"
    x = f'ACC.vload({s}, "int32x4")'
    if with_left:
        x = f'({x} << LSH.vload({s}, "int32x4"))'
    mul = f'T.call_llvm_pure_intrin("int32x4", "llvm.aarch64.neon.sqrdmulh", {x}, MULT.vload({s}, "int32x4"))'
    r = f'RSH.vload({s}, "int32x4")'
    if form == "neon_rs":   # every channel shifts right: v + (v >> 31) (requant.py)
        fixed = f'({mul} + ({mul} >> T.broadcast(T.int32(31), 4)))'
    else:
        fix = f'(({mul} & {r}) >> T.broadcast(T.int32(31), 4))'
        fixed = f'T.call_llvm_pure_intrin("int32x4", "llvm.aarch64.neon.sqadd", {mul}, {fix})'
    return f'T.call_llvm_pure_intrin("int32x4", "llvm.aarch64.neon.srshl", {fixed}, {r})'


def _narrow_pair(q: int, with_left: bool, form: str, y_zp: int) -> str:
    """Lanes 8p..8p+7 (q = 2p) as int16x8: saturated, plus the zero point (saturating)."""
    halves = [f'T.call_llvm_pure_intrin("int16x4", "llvm.aarch64.neon.sqxtn", {_quarter(q + i, with_left, form)})'
              for i in (0, 1)]
    joined = f"T.Shuffle([{halves[0]}, {halves[1]}], [0, 1, 2, 3, 4, 5, 6, 7])"
    return (f'T.call_llvm_pure_intrin("int16x8", "llvm.aarch64.neon.sqadd", {joined}, '
            f'T.broadcast(T.int16({y_zp}), 8))')


def _result(lanes: int, with_left: bool, form: str, y_zp: int, lo: int, hi: int) -> str:
    bytes8 = [f'T.call_llvm_pure_intrin("int8x8", "llvm.aarch64.neon.sqxtn", {_narrow_pair(2 * p, with_left, form, y_zp)})'
              for p in range(lanes // 8)]
    y = bytes8[0] if lanes == 8 else f"T.Shuffle([{', '.join(bytes8)}], [{', '.join(map(str, range(lanes)))}])"
    return f"T.max(T.min({y}, T.broadcast(T.int8({hi}), {lanes})), T.broadcast(T.int8({lo}), {lanes}))"


def register(lanes: int, y_zp: int, act_min: int, act_max: int, with_left: bool, form: str = "neon") -> str:
    """The intrinsic's name (registered on first use) for runs of `lanes` (8, 16, 24, 32)."""
    import tvm
    from tvm import s_tir, te
    name = f"edgeq_requant{lanes}_{y_zp}_{act_min}_{act_max}_{int(with_left)}_{form}".replace("-", "m")
    if name in _REGISTERED:
        return name
    acc, mult, lsh, rsh = (te.placeholder((lanes,), "int32", name=n) for n in ("acc", "mult", "lshift", "rshift"))
    y = te.compute((lanes,), lambda j: rq.clamp_to_int8(
        rq.mbqm(acc[j], mult[j], lsh[j], rsh[j], with_left, form), y_zp, act_min, act_max), name="y")
    params = [acc, mult] + ([lsh] if with_left else []) + [rsh, y]
    # TE writes the statement (so it is the kernels' own expression); the description
    # around it needs the explicit root block with the regions tensorize matches on
    statement = next(line.strip() for line in prim_func(params).script().splitlines()
                     if line.strip().startswith("y[v_j] = "))
    names = [p.op.name for p in params]
    desc = tvm.script.from_source(DESC.substitute(
        lanes=lanes, statement=statement, handles=", ".join(f"{n}_h: T.handle" for n in names),
        matches="\n".join(f'    {n} = T.match_buffer({n}_h, ({lanes},), "{"int8" if n == "y" else "int32"}", '
                          f'offset_factor=1, align=1)' for n in names),
        reads=", ".join(f"{n}[0:{lanes}]" for n in names[:-1]),
        reads_j=", ".join(f"{n}[v_j]" for n in names[:-1])))
    text = IMPL.substitute(lanes=lanes, result=_result(lanes, with_left, form, y_zp, act_min, act_max))
    if not with_left:   # the description has no left shifts then: neither may the impl
        text = text.replace(", ls: T.handle", "").replace(", LSH[0:$lanes]".replace("$lanes", str(lanes)), "")
        text = "\n".join(line for line in text.splitlines() if "LSH = " not in line)
    impl = tvm.script.from_source(text)
    s_tir.TensorIntrin.register(name, desc, impl)
    _REGISTERED.add(name)
    return name
