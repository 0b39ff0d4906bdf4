"""edgeq.lower_tvm: every TVM kernel bit-exact with the integer reference under qemu-aarch64.

Each case builds one ai.edgeq node, lowers it for a CPU, runs the kernel under
`qemu-aarch64 -cpu <that CPU's model>` on NHWC data (one static binary per CPU for all
cases, inputs against an inaccessible page, outputs and scratch fenced) and compares
with edgeq.reference on NCHW data with np.array_equal. The default run covers each op
family once or twice (kernels are cached by their parameters, so a rerun compiles
nothing); the grid over shapes, strides, pads, groups and CPUs is `slow`. Whole models
through the `arm64` target (TVM kernels under edgeq's model.c): tests/test_arm64.py.
"""
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import numpy as np
import pytest

pytest.importorskip("tvm")
if not (shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-gcc")):
    pytest.skip("needs qemu-aarch64 and aarch64-linux-gnu-gcc", allow_module_level=True)

from edgeq import fixedpoint as fp  # noqa: E402
from edgeq.reference import run_node  # noqa: E402
from edgeq.reference.avgpool import avgpool_recips  # noqa: E402
from edgeq.ir import Graph, Node, Tensor  # noqa: E402
from edgeq.lower_tvm.cpus import get_cpu  # noqa: E402
from edgeq.lower_tvm.harness import run_kernels  # noqa: E402
from edgeq.lower_tvm.lower import lower_node  # noqa: E402


def _nhwc(a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    if a.ndim == 3:  # [N, C, L] -> [N, L, C]
        return np.ascontiguousarray(a.transpose(0, 2, 1))
    return a


def _graph(inputs: dict, consts: dict, node: Node, arrays: list) -> tuple[Graph, np.ndarray]:
    g = Graph("t")
    for name, a in inputs.items():
        g.add_tensor(Tensor(name, a.shape, "int8"))
    for name, a in consts.items():
        g.add_const(name, a)
    want = run_node(node, arrays)
    g.add_tensor(Tensor(node.outputs[0], want.shape, "int8"))
    return g, want


def conv_case(n, ci, h, w, co, kh, kw, st, pads, dil, group, seed=0, x_zp=-9, y_zp=4, act=(-128, 127),
              scale=(0.002, 0.02), one_d=False):
    rng = np.random.default_rng(seed)
    shape = (n, ci, w) if one_d else (n, ci, h, w)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    wt = rng.integers(-127, 128, (co, ci // group) + ((kw,) if one_d else (kh, kw))).astype(np.int8)
    bias = rng.integers(-3000, 3000, co).astype(np.int32)
    m, s = fp.quantize_multiplier_array(rng.uniform(*scale, co))
    node = Node("QConv", "conv", ["x", "w", "b", "m", "s"], ["y"],
                dict(strides=list(st), pads=list(pads), dilations=list(dil), group=group, x_zp=x_zp,
                     y_zp=y_zp, act_min=act[0], act_max=act[1]))
    g, want = _graph({"x": x}, {"w": wt, "b": bias, "m": m, "s": s}, node, [x, wt, bias, m, s])
    return g, node, {"x": _nhwc(x)}, _nhwc(want), {}


def gemm_case(n, k, co, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, k)).astype(np.int8)
    wt = rng.integers(-127, 128, (co, k)).astype(np.int8)
    bias = rng.integers(-3000, 3000, co).astype(np.int32)
    m, s = fp.quantize_multiplier_array(rng.uniform(0.001, 0.01, co))
    node = Node("QGemm", "fc", ["x", "w", "b", "m", "s"], ["y"], dict(x_zp=5, y_zp=-3, act_min=-128, act_max=127))
    g, want = _graph({"x": x}, {"w": wt, "b": bias, "m": m, "s": s}, node, [x, wt, bias, m, s])
    return g, node, {"x": x}, want, {}


def add_case(sa, sb, seed=0, a_scale=0.3, b_scale=0.5, y_scale=0.02, nhwc=True):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, sa).astype(np.int8)
    b = rng.integers(-128, 128, sb).astype(np.int8)
    (am, ash), (bm, bsh), (ym, ysh) = (fp.quantize_multiplier(v) for v in (a_scale, b_scale, y_scale))
    node = Node("QAdd", "add", ["a", "b"], ["y"], dict(
        a_zp=3, b_zp=-7, y_zp=-2, left_shift=20, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh,
        y_mult=ym, y_shift=ysh, act_min=-100, act_max=127))
    g, want = _graph({"a": a, "b": b}, {}, node, [a, b])
    lay = _nhwc if nhwc else (lambda v: v)
    return g, node, {"a": lay(a), "b": lay(b)}, lay(want), {} if nhwc else {"perm": None}


def pool_case(op, shape, k, st, pads, include_pad=0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    attrs = dict(kernel=list(k), strides=list(st), pads=list(pads), act_min=-120, act_max=120)
    if op == "QAvgPool":
        r, s = avgpool_recips(*k)
        attrs.update(recip=r, rshift=s, x_zp=-5, count_include_pad=include_pad)
    node = Node(op, "pool", ["x"], ["y"], attrs)
    g, want = _graph({"x": x}, {}, node, [x])
    return g, node, {"x": _nhwc(x)}, _nhwc(want), {}


# (case id, builder, args): the default set, one or two of each kernel family
DEFAULT = [
    ("conv3x3_flat_pad", conv_case, (1, 16, 9, 7, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)),
    ("conv_c1_asym_stride", conv_case, (1, 1, 13, 10, 8, 5, 4, (2, 2), (2, 1, 2, 1), (1, 1), 1)),
    ("conv_c3_tail_tile", conv_case, (1, 3, 6, 5, 12, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)),
    ("pointwise", conv_case, (1, 32, 5, 5, 24, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)),
    ("conv_dilated_grouped", conv_case, (1, 4, 7, 7, 6, 3, 2, (2, 1), (0, 2, 1, 0), (2, 2), 2)),
    ("depthwise", conv_case, (1, 16, 8, 6, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 16)),
    ("depthwise_mult2_stride", conv_case, (1, 5, 6, 6, 10, 3, 3, (2, 2), (1, 0, 0, 1), (1, 1), 5)),
    ("conv1d", conv_case, (1, 8, 1, 12, 8, 1, 3, (1,), (1, 1), (1,), 1), {"one_d": True}),
    ("gemm", gemm_case, (1, 64, 12)),
    ("gemm_batch_odd", gemm_case, (3, 20, 10)),
    ("add_same", add_case, ((1, 8, 4, 6), (1, 8, 4, 6))),
    ("add_per_channel", add_case, ((1, 8, 3, 3), (1, 8, 1, 1))),
    ("add_2d", add_case, ((2, 12), (1, 12)), {"nhwc": False}),
    # multiplier 0.5 (a shift in the kernel) on a, on b (above), on neither
    ("add_half_a", add_case, ((1, 16, 3, 3), (1, 16, 3, 3)), {"a_scale": 0.5, "b_scale": 0.2, "seed": 4}),
    ("add_no_half", add_case, ((1, 16, 3, 3), (1, 16, 3, 3)), {"a_scale": 0.3, "b_scale": 0.45, "seed": 5}),
    ("maxpool", pool_case, ("QMaxPool", (1, 8, 7, 9), (3, 3), (2, 2), (1, 1, 1, 1))),
    ("avgpool_global", pool_case, ("QAvgPool", (1, 16, 5, 3), (5, 3), (5, 3), (0, 0, 0, 0))),
    ("avgpool_pad", pool_case, ("QAvgPool", (1, 4, 6, 5), (3, 3), (2, 1), (1, 0, 1, 1))),
]


def _build(cases, cpu_name: str, keep_kernels: bool = False):
    cpu = get_cpu(cpu_name)
    built = []
    for case in cases:
        cid, fn, args = case[:3]
        kw = case[3] if len(case) > 3 else {}
        g, node, inputs, want, options = fn(*args, **kw)
        built.append((cid, lower_node(node, g, cpu, **options), inputs, want))
    outs, _ = run_kernels([(k, i) for _, k, i, _ in built], cpu)
    return {cid: (o["y"].reshape(want.shape), want) + ((k,) if keep_kernels else ())
            for (cid, k, _, want), o in zip(built, outs)}


@lru_cache(maxsize=None)
def default_results(cpu_name: str):
    return _build(DEFAULT, cpu_name)


@pytest.mark.parametrize("cid", [c[0] for c in DEFAULT])
def test_kernel_bit_exact_sdot(cid):
    got, want = default_results("cortex-a76")[cid]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("cid", ["conv3x3_flat_pad", "conv_dilated_grouped", "gemm_batch_odd"])
def test_kernel_bit_exact_neon_fallback(cid):
    """cortex-a53 has no dotprod: the NEON smull/saddlp product runs instead of sdot."""
    cases = [c for c in DEFAULT if c[0] in ("conv3x3_flat_pad", "conv_dilated_grouped", "gemm_batch_odd")]
    got, want = _neon_results(tuple(c[0] for c in cases))[cid]
    assert np.array_equal(got, want)


@lru_cache(maxsize=None)
def _neon_results(ids):
    return _build([c for c in DEFAULT if c[0] in ids], "cortex-a53")


# ---- smmla (i8mm): pointwise convs and Gemm on `max` --------------------------------------

# (case id, builder, args, options, inner product the plan must pick on an i8mm CPU)
SMMLA = [
    ("pw_odd_pixels", conv_case, (1, 32, 5, 5, 24, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {}, "smmla"),
    ("pw_whole_tiles", conv_case, (1, 16, 4, 4, 32, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {"seed": 1}, "smmla"),
    ("pw_3_pixels_odd_co", conv_case, (1, 8, 1, 3, 10, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {"seed": 2}, "smmla"),
    ("pw_relu_left_shift", conv_case, (1, 24, 3, 5, 12, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
     {"seed": 3, "act": (-30, 127), "y_zp": -30, "scale": (1.5, 3.0)}, "smmla"),
    # 8 channels with a left shift: a tile the epilogue micro-kernel's description did not match
    ("pw_left_shift_8ch", conv_case, (1, 8, 5, 5, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {"scale": (1.5, 3.0)}, "smmla"),
    ("pw_batch2", conv_case, (2, 16, 3, 3, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {"seed": 4}, "smmla"),
    ("conv1d_pointwise", conv_case, (1, 40, 1, 9, 16, 1, 1, (1,), (0, 0), (1,), 1), {"one_d": True}, "smmla"),
    ("gemm_batch3", gemm_case, (3, 24, 10), {}, "smmla"),
    ("gemm_batch2_wide", gemm_case, (2, 256, 64), {}, "smmla"),
    # the sdot schedule where smmla does not fit: C % 8, one pixel, a 3x3 window, stride 2
    ("pw_c20_sdot", conv_case, (1, 20, 4, 3, 16, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1), {}, "sdot"),
    ("gemm_batch1_sdot", gemm_case, (1, 64, 12), {}, "sdot"),
    ("conv3x3_sdot", conv_case, (1, 16, 6, 5, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1), {}, "sdot"),
    ("pw_stride2_sdot", conv_case, (1, 16, 6, 6, 8, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1), {}, "sdot"),
]


@lru_cache(maxsize=None)
def smmla_results():
    built = _build([c[:4] for c in SMMLA], "max", keep_kernels=True)
    return built


@pytest.mark.parametrize("cid, inner", [(c[0], c[4]) for c in SMMLA])
def test_kernel_bit_exact_smmla(cid, inner):
    """On an i8mm CPU (qemu -cpu max) pointwise convs and Gemm with C % 8 == 0 and two
    pixels or more run `smmla`; the kernel's own plan says which product it used, and the
    object holds that instruction and not the other."""
    got, want, kernel = smmla_results()[cid]
    assert np.array_equal(got, want)
    assert kernel.notes["inner"] == inner
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(kernel.obj)], capture_output=True,
                         text=True, check=True).stdout
    other = "sdot" if inner == "smmla" else "smmla"
    assert f"\t{inner}\t" in dis and f"\t{other}\t" not in dis


def test_smmla_weights_are_2x8_blocks():
    """Pre-packed smmla weights: block [jb, r // 8, j_t] holds channels 2 j_t, 2 j_t + 1 of
    channel tile jb, 8 inputs each, as one 16-byte row."""
    from edgeq.lower_tvm.ops.conv import ConvLowering
    g, node, *_ = conv_case(1, 16, 2, 2, 12, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    low = ConvLowering(node, g, get_cpu("max"))
    w = np.asarray(low.w).reshape(12, 16)
    packed = low.consts()["w"]
    cot = low.plan.cot
    assert packed.shape == (12 // cot, 2, cot // 2, 2, 8)
    for j in range(12):
        for r in range(16):
            assert packed[j // cot, r // 8, (j % cot) // 2, j % 2, r % 8] == w[j, r]


# ---- the requantization itself, on edge values -------------------------------------------

class _MbqmLowering:
    """y[i] = MBQM(x[i], m[i], shift[i]) as an int32 kernel, in one requantization form."""
    op = "QRequant"

    def __init__(self, size: int, form: str):
        self.size, self.form = size, form

    def key(self):
        return {"op": "mbqm-test", "size": self.size, "form": self.form}

    def te_args(self):
        from tvm import te
        from edgeq.lower_tvm import requant as rq
        x, m, lsh, rsh = (te.placeholder((self.size,), "int32", name=n) for n in ("x", "m", "lshift", "rshift"))
        y = te.compute((self.size,), lambda i: rq.mbqm(x[i], m[i], lsh[i], rsh[i], True, self.form), name="y")
        return [x, m, lsh, rsh, y]

    def schedule(self, func):
        from tvm import s_tir
        sch = s_tir.Schedule(func)
        (i,) = sch.get_loops(sch.get_sblock("y"))
        _, lanes = sch.split(i, [None, 4])
        sch.vectorize(lanes)
        return sch.mod["main"]

    def consts(self):
        return {}

    def io(self):
        return {"x": "x", "m": "m", "lshift": "lshift", "rshift": "rshift", "y": "y"}


def _mbqm_inputs():
    """x over int32 with its edges, multipliers over [2^30, 2^31), right shifts 0..31, and
    left shifts 1..11 on values small enough for them (MBQM's precondition)."""
    rng = np.random.default_rng(7)
    edges = np.array([0, 1, -1, 2, -2, 3, -3, 1 << 30, -(1 << 30), (1 << 31) - 1, -(1 << 31),
                      -(1 << 31) + 1, 12345, -12345, 255, -256], np.int64)
    x = np.concatenate([np.tile(edges, 8), rng.integers(-(1 << 19), 1 << 19, 1024),
                        rng.integers(-(1 << 31), 1 << 31, 4096 - 128 - 1024)])
    m = np.concatenate([rng.choice([1 << 30, (1 << 31) - 1, (1 << 30) | 1, 1518500250], 128),
                        rng.integers(1 << 30, 1 << 31, 4096 - 128)])
    shift = rng.integers(-31, 1, x.size)
    left = (np.abs(x) < (1 << 19)) & (rng.random(x.size) < 0.5)
    shift[left] = rng.integers(1, 12, int(left.sum()))
    return x, m, shift


@pytest.mark.parametrize("form", ["int64", "neon", "neon_rs"])
def test_requantization_forms_equal_fixedpoint(form):
    from edgeq.lower_tvm import requant as rq
    from edgeq.lower_tvm.lower import make_kernel
    x, m, shift = _mbqm_inputs()
    if form == "neon_rs":   # the form for layers whose every channel shifts right
        shift = np.minimum(shift, -1)
    lsh, rsh = rq.split_shifts(shift)
    cpu = get_cpu("cortex-a76")
    k = make_kernel(_MbqmLowering(x.size, form), cpu)
    arrays = {"x": x.astype(np.int32), "m": m.astype(np.int32), "lshift": lsh, "rshift": rq.shift_args(rsh, form)}
    (out,), _ = run_kernels([(k, arrays)], cpu)
    want = fp.multiply_by_quantized_multiplier(x, m, shift)
    assert np.array_equal(out["y"].astype(np.int64), want)


# ---- the slow grid ----------------------------------------------------

def _grid():
    """Shapes, strides, pads, dilations, groups and zero points around the default set."""
    cases = []
    rng = np.random.default_rng(3)
    for k, (ci, co) in enumerate([(1, 8), (3, 16), (4, 12), (8, 8), (16, 32), (24, 16), (40, 40), (64, 64)]):
        for kh, kw, st, pads, dil in [(3, 3, (1, 1), (1, 1, 1, 1), (1, 1)), (3, 3, (2, 2), (0, 0, 1, 1), (1, 1)),
                                      (1, 1, (1, 1), (0, 0, 0, 0), (1, 1)), (1, 1, (2, 2), (0, 0, 0, 0), (1, 1)),
                                      (5, 3, (1, 2), (2, 1, 2, 1), (1, 1)), (3, 3, (1, 1), (2, 2, 2, 2), (2, 2))]:
            h, w = int(rng.integers(5, 14)), int(rng.integers(5, 14))
            cases.append((f"conv{k}_{kh}x{kw}_s{st[0]}{st[1]}_d{dil[0]}_h{h}w{w}", conv_case,
                          (1, ci, h, w, co, kh, kw, st, pads, dil, 1), {"seed": k, "x_zp": int(rng.integers(-128, 128))}))
    for c, mult, st in [(8, 1, (1, 1)), (16, 1, (2, 2)), (24, 1, (1, 1)), (32, 2, (1, 1)), (7, 1, (2, 1)), (64, 1, (1, 1))]:
        cases.append((f"dw{c}x{mult}_s{st[0]}{st[1]}", conv_case,
                      (1, c, 9, 7, c * mult, 3, 3, st, (1, 1, 1, 1), (1, 1), c), {"seed": c}))
    cases.append(("grouped4", conv_case, (1, 8, 6, 6, 12, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4)))
    cases.append(("relu_clamp", conv_case, (1, 16, 6, 6, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                  {"act": (-20, 127), "y_zp": -20}))
    cases.append(("left_shift", conv_case, (1, 8, 5, 5, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
                  {"scale": (1.5, 3.0)}))
    for n, k, co in [(1, 640, 128), (1, 128, 8), (2, 100, 30), (1, 256, 2)]:
        cases.append((f"gemm{n}x{k}x{co}", gemm_case, (n, k, co)))
    for sa, sb in [((1, 40, 8, 8), (1, 40, 8, 8)), ((1, 3, 5, 7), (1, 3, 1, 7)), ((1, 12, 4, 4), (1, 1, 1, 1))]:
        cases.append((f"add{sa}{sb}", add_case, (sa, sb)))
    for op, k, st, pads, inc in [("QMaxPool", (2, 2), (2, 2), (0, 0, 0, 0), 0), ("QMaxPool", (3, 3), (1, 1), (1, 1, 1, 1), 0),
                                 ("QAvgPool", (2, 2), (2, 2), (0, 0, 0, 0), 0), ("QAvgPool", (3, 3), (2, 2), (1, 1, 1, 1), 1),
                                 ("QAvgPool", (7, 7), (7, 7), (0, 0, 0, 0), 0)]:
        cases.append((f"{op}{k}{st}{pads}{inc}", pool_case, (op, (1, 24, 7, 7), k, st, pads, inc)))
    return cases


GRID = _grid()


@lru_cache(maxsize=None)
def grid_results(cpu_name: str):
    return _build(GRID, cpu_name)


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a53", "max"])
@pytest.mark.parametrize("cid", [c[0] for c in GRID])
def test_kernel_grid_bit_exact(cid, cpu):
    got, want = grid_results(cpu)[cid]
    assert np.array_equal(got, want)
