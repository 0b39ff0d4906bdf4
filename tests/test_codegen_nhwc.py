"""The channels-last build (issue 17): layout assignment, kernel choice, and the generated C
equal to the integer reference byte for byte, on the host (the portable _c variants) and on
the QEMU boards (DSP on cortex-m4/m7/m33, MVE on cortex-m55), over the kernel grid of
tests/_nhwc_cases.py and the per-op graphs. The MLPerf Tiny and models/ networks run
through the same builds in tests/test_mcu.py (slow set)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeq.codegen import plan_build
from edgeq.codegen.kernels import PORTABLE, PORTABLE_NHWC, choice_for_cpu, kernel_of
from edgeq.codegen.layout import LAYOUT_KEY, is_byte_identity, physical_transpose, same_bytes, storage_order
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.interpreter import run_reference
from edgeq.ir import QParams
from edgeq.targets import get_target

from ._nhwc_cases import CONV, DEPTHWISE, DW3X3, FC, POINTWISE, POOL
from .test_codegen_host import G, check_target, per_op_graphs, qgraph_all_ops, qgraph_conv, qgraph_ops

BOARDS = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
# the grid on the M4 and M33 (the M7's DSP code on other cores) runs in the slow set
GRID_BOARDS = [pytest.param(b, marks=pytest.mark.slow) if b in ("cortex-m4", "cortex-m33") else b for b in BOARDS]
M7 = choice_for_cpu("cortex-m7")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc is missing")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                               reason="arm-none-eabi-gcc / qemu-system-arm missing")


def nhwc_host():
    """The host target building the channels-last path's portable C (the second oracle)."""
    from edgeq.targets.host import HostTarget
    t = HostTarget()
    t.kernels = PORTABLE_NHWC
    return t


# ---- layouts --------------------------------------------------------------------------------

def test_storage_orders_and_byte_identities():
    assert storage_order(4, "nhwc") == [0, 2, 3, 1] and storage_order(3, "nhwc") == [0, 2, 1]
    assert storage_order(2, "nhwc") == [0, 1] and storage_order(4, "nchw") == [0, 1, 2, 3]
    assert same_bytes((1, 1, 5, 5), [0, 1, 2, 3], [0, 2, 3, 1])        # C == 1
    assert same_bytes((1, 8, 1, 1), [0, 1, 2, 3], [0, 2, 3, 1])        # H == W == 1
    assert not same_bytes((1, 8, 2, 1), [0, 1, 2, 3], [0, 2, 3, 1])
    # an image model's NHWC -> NCHW input transpose, its output stored NHWC: the same bytes
    assert is_byte_identity((1, 96, 96, 3), [0, 3, 1, 2], "nchw", "nhwc")
    assert not is_byte_identity((1, 96, 96, 3), [0, 3, 1, 2], "nchw", "nchw")
    # a relayout (identity logical permutation) from NHWC storage back to NCHW
    assert physical_transpose((1, 3, 4, 5), [0, 1, 2, 3], "nhwc", "nchw") == ([1, 4, 5, 3], [0, 3, 1, 2])
    x = np.arange(60).reshape(1, 3, 4, 5)
    dims, perm = physical_transpose(x.shape, [0, 2, 3, 1], "nhwc", "nhwc")
    stored_in = x.transpose(0, 2, 3, 1)                              # x stored NHWC
    want = x.transpose(0, 2, 3, 1)                                   # logical output [1, 4, 5, 3] ...
    assert np.array_equal(stored_in.reshape(dims).transpose(perm), want.transpose(0, 2, 3, 1))  # ... stored NHWC


def _lowered(g, choice=M7):
    build = plan_build(g, choice, "always")
    return build.graph, {n.name: kernel_of(n, build.graph, build.kernels).function for n in build.graph.nodes}


def test_image_input_transpose_becomes_an_alias():
    b = G("img")
    x = b.x((1, 12, 10, 3))
    t = b.transpose(x, (0, 3, 1, 2))
    y = b.conv(t, 8)
    pooled = _pool(b, "QAvgPool", y, (12, 10), (12, 10), (0, 0, 0, 0), 0)   # [1, 8, 1, 1]
    g = b.done(b.gemm(b.reshape(pooled, (1, 8)), 4))
    low, fns = _lowered(g)
    assert [n.op for n in low.nodes][:2] == ["QReshape", "QConv"]        # no copy at the input
    assert not [n for n in low.nodes if n.name.endswith(("/to_nhwc", "/to_nchw"))]
    assert fns[low.nodes[1].name] == "eq_nhwc_conv_s8_dsp"
    plan = plan_build(g, M7, "fit").plan
    assert plan.offsets[t] == plan.offsets[x]                            # the alias shares the input's bytes


def test_relayouts_only_where_the_layouts_differ():
    """NCHW input with C > 1: one transpose in; an op without a channels-last kernel (QMul)
    gets one on each side; a 4-D output goes back to NCHW (the model's contract)."""
    b = G("mixed")
    x = b.x((1, 4, 6, 5))
    a = b.conv(x, 8)
    m = b.mul(a, b.const_i8((1, 8, 1, 1)))          # broadcasting mul: NCHW kernel only
    c = b.conv(m, 8, k=1, pads=(0, 0, 0, 0))
    g = b.done(b.add(c, c))
    low, fns = _lowered(g)
    names = [n.name for n in low.nodes]
    assert names == ["input/to_nhwc", "qconv/1;x", "qconv/1;x:out/to_nchw", "qmul/2;x", "qmul/2;x:out/to_nhwc",
                     "qconv/3;x", "qadd/4;x", "qadd/4;x:out/to_nchw"]
    assert fns["qconv/3;x"] == "eq_nhwc_pointwise_s8_dsp" and fns["qmul/2;x"] == "eq_mul_s8"
    assert fns["qadd/4;x"] == "eq_nhwc_add_s8_dsp"
    assert low.outputs == g.outputs and low.inputs == g.inputs
    assert low.meta[LAYOUT_KEY][g.inputs[0] + "/nhwc"] == "nhwc" and g.outputs[0] not in low.meta[LAYOUT_KEY]
    # the lowered graph is still the model: its relayouts are identity transposes
    feeds = {x: np.random.default_rng(0).integers(-128, 128, (2, 4, 6, 5), dtype=np.int8)}
    assert np.array_equal(run_reference(low, feeds)[g.outputs[0]], run_reference(g, feeds)[g.outputs[0]])


def test_nchw_builds_are_not_lowered():
    g = qgraph_ops()
    assert plan_build(g, PORTABLE).graph is g


# ---- kernel choice --------------------------------------------------------------------------

def test_kernel_choice_per_node():
    b = G("choice")
    x = b.x((1, 8, 9, 9))
    dw = b.conv(x, 8, group=8)                                 # depthwise 3x3 -> dw3x3
    dw2 = b.conv(dw, 16, group=8, stride=2)                    # multiplier 2 -> depthwise
    pw = b.conv(dw2, 16, k=1, pads=(0, 0, 0, 0))               # 1x1 -> pointwise
    cv = b.conv(pw, 4, k=(3, 2), pads=(1, 0, 1, 1))            # general
    ad = b.add(cv, b.const_i8((1, 4, 1, 1)))                   # broadcast -> eq_add_s8 (NCHW)
    g = b.done(b.gemm(b.reshape(ad, (1, 4 * 5 * 4)), 3))
    for cpu, isa in (("cortex-m7", "dsp"), ("cortex-m4", "dsp"), ("cortex-m33", "dsp"), ("cortex-m55", "mve")):
        fns = [kernel_of(n, g, choice_for_cpu(cpu)).function for n in g.nodes]
        assert fns == [f"eq_nhwc_dw3x3_s8_{isa}", f"eq_nhwc_depthwise_s8_{isa}", f"eq_nhwc_pointwise_s8_{isa}",
                       f"eq_nhwc_conv_s8_{isa}", "eq_add_s8", "eq_reshape_s8", f"eq_nhwc_fc_s8_{isa}"], cpu
    assert choice_for_cpu("host") == PORTABLE
    # a layer the memory plan gave no scratch runs the scratch-free portable variant (the
    # M55's depthwise 3x3 needs none: specialised, its x_zp row is a constant)
    direct = M7.without_scratch([g.nodes[0].name, g.nodes[2].name])
    assert kernel_of(g.nodes[0], g, direct).function == "eq_nhwc_dw3x3_s8_c"
    m55 = choice_for_cpu("cortex-m55").without_scratch([g.nodes[0].name])
    assert kernel_of(g.nodes[0], g, m55).function == "eq_nhwc_dw3x3_s8_mve"
    assert kernel_of(g.nodes[2], g, direct).function == "eq_nhwc_pointwise_s8_c"


def test_int4_weights_keep_the_nchw_s4_kernel():
    g = qgraph_conv()
    w = g.tensors[g.nodes[0].inputs[1]]
    w.q = QParams(np.ones(w.shape[0]), np.zeros(w.shape[0], np.int64), bits=4, axis=0)
    w.data = np.clip(w.data, -8, 7).astype(np.int8)
    assert kernel_of(g.nodes[0], g, M7).function == "eq_conv2d_s4"
    low, fns = _lowered(g)
    assert fns[g.nodes[0].name] == "eq_conv2d_s4" and fns[g.nodes[1].name] == "eq_nhwc_conv_s8_dsp"


@needs_gcc
def test_weightless_ops_after_an_nchw_kernel_stay_nchw(tmp_path):
    """After an int4 conv (NCHW kernels only) a pool and an add keep NCHW instead of paying
    two relayouts; the one relayout is before the next channels-last conv."""
    b = G("int4")
    x = b.x((1, 4, 8, 8))
    c4 = b.conv(x, 8)
    w = b.g.tensors[b.g.nodes[0].inputs[1]]
    w.q = QParams(np.ones(8), np.zeros(8, np.int64), bits=4, axis=0)
    w.data = np.clip(w.data, -8, 7).astype(np.int8)
    p = b.pool("QMaxPool", c4, 2, 2)
    a = b.add(p, p)
    g = b.done(b.conv(a, 8, k=1, pads=(0, 0, 0, 0)))
    low, fns = _lowered(g)
    assert [fns[n.name] for n in low.nodes] == ["eq_conv2d_s4", "eq_maxpool_s8", "eq_add_s8", "eq_transpose_s8",
                                                "eq_nhwc_pointwise_s8_dsp", "eq_transpose_s8"]
    assert [n.name for n in low.nodes if n.op == "QTranspose"] == ["qadd/3;x:out/to_nhwc", "qconv/4;x:out/to_nchw"]
    check_target(nhwc_host(), g, tmp_path, n=2)


def test_fit_plan_is_the_smallest_and_fast_fits_the_part():
    """fit: no arena larger than the activations need (the scratch-free variants where a
    layer's scratch would raise it); always: every layer its scratch; fast: fit's arena,
    those layers in row chunks."""
    b = G("tight")
    x = b.x((1, 64, 6, 6))
    g = b.done(b.conv(b.conv(x, 64, k=1, pads=(0, 0, 0, 0)), 64, k=1, pads=(0, 0, 0, 0)))
    fit, always = plan_build(g, M7, "fit"), plan_build(g, M7, "always")
    assert fit.arenas == always.arenas and fit.arenas["smallest"] < fit.arenas["fastest"]
    assert fit.plan.arena_bytes == fit.arenas["smallest"] and fit.plan.direct
    assert all(kernel_of(fit.graph.node_by_name(n), fit.graph, fit.kernels).function.endswith("_c")
               for n in fit.plan.direct)
    assert always.plan.arena_bytes == always.arenas["fastest"] and not always.plan.direct
    # fast: the smallest arena, its peak layers run in row chunks (tests/test_row_chunks.py)
    fast = plan_build(g, M7, "fast", ram_limit=10**6)
    assert fast.policy == "rows" and fast.plan.arena_bytes == fit.arenas["smallest"] and not fast.plan.direct


# ---- bit-exact: host (portable _c) ------------------------------------------------------------

def _grid_graph(family: str):
    """The kernel grid of tests/_nhwc_cases.py as one multi-input, multi-output graph (one
    branch per case, batch 1), every branch quantized like G's layers."""
    b = G(f"grid_{family}", seed=17)
    outs = []
    for k, case in enumerate({"conv": CONV, "pointwise": POINTWISE, "depthwise": DEPTHWISE, "dw3x3": DW3X3,
                              "fc": FC, "pool": POOL}[family]):
        if family == "conv":
            _, ci, h, w, co, kh, kw, st, pads, dil, grp = case
            outs.append(_conv(b, b.x((1, ci, h, w), f"x{k}", zp=-3 + k), co, (kh, kw), st, pads, dil, grp))
        elif family == "pointwise":
            _, ci, h, w, co, st = case
            outs.append(_conv(b, b.x((1, ci, h, w), f"x{k}"), co, (1, 1), (st, st), (0, 0, 0, 0), (1, 1), 1))
        elif family == "depthwise":
            _, c, h, w, mult, kh, kw, st, pads, dil = case
            outs.append(_conv(b, b.x((1, c, h, w), f"x{k}", zp=k - 2), c * mult, (kh, kw), st, pads, dil, c))
        elif family == "dw3x3":
            _, c, h, w, st, pads = case
            outs.append(_conv(b, b.x((1, c, h, w), f"x{k}", zp=-128 if k % 2 else 127), c, (3, 3), st, pads,
                              (1, 1), c))
        elif family == "fc":
            _, kk, co = case
            outs.append(b.gemm(b.x((1, kk), f"x{k}"), co))
        else:
            _, c, h, w, kh, kw, st, pads, dil, cip = case
            if dil != (1, 1):
                continue  # the integer graph's pools are not dilated
            x = b.x((1, c, h, w), f"x{k}")
            outs += [_pool(b, "QMaxPool", x, (kh, kw), st, pads, cip), _pool(b, "QAvgPool", x, (kh, kw), st, pads, cip)]
            a = _conv(b, x, c, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1)
            outs.append(b.add(a, a if k % 2 else x))                 # same-shape adds
    return b.done(*outs)


def _conv(b, x, co, k, st, pads, dil, group):
    n, ci, h, w = b.g.tensors[x].shape
    kh, kw = k
    wt = b.rng.integers(-127, 128, size=(co, ci // group, kh, kw)).astype(np.int8)
    depth = ci // group * kh * kw
    mult, shift = b.requant_params(co, -7 - int(np.ceil(np.log2(depth) / 2)))
    ins = [x, b.g.add_const(f"w{b.k}", wt), b.g.add_const(f"b{b.k}", b.rng.integers(-3000, 3000, co).astype(np.int32)),
           b.g.add_const(f"m{b.k}", mult), b.g.add_const(f"s{b.k}", shift)]
    ho = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // st[0] + 1
    wo = (w + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // st[1] + 1
    attrs = {"strides": list(st), "pads": list(pads), "dilations": list(dil), "group": group,
             "x_zp": int(b.g.tensors[x].q.zero_point), "y_zp": -5, "act_min": -128 + 3 * (b.k % 3), "act_max": 127}
    return b.node("QConv", ins, (n, co, ho, wo), attrs)


def _pool(b, op, x, k, st, pads, cip):
    n, c, h, w = b.g.tensors[x].shape
    ho = (h + pads[0] + pads[2] - k[0]) // st[0] + 1
    wo = (w + pads[1] + pads[3] - k[1]) // st[1] + 1
    attrs = {"kernel": list(k), "strides": list(st), "pads": list(pads), "dilations": [1, 1],
             "act_min": -128, "act_max": 127}
    if op == "QAvgPool":
        recip, rshift = avgpool_recips(*k)
        attrs.update(count_include_pad=cip, recip=recip, rshift=rshift, x_zp=int(b.g.tensors[x].q.zero_point))
    return b.node(op, [x], (n, c, ho, wo), attrs)


FAMILIES = ["conv", "pointwise", "depthwise", "dw3x3", "fc", "pool"]


@needs_gcc
@pytest.mark.parametrize("family", FAMILIES)
def test_host_nhwc_kernel_grid_equals_reference(family, tmp_path):
    g = _grid_graph(family)
    assert any("nhwc" in kernel_of(n, g, PORTABLE_NHWC).function for n in g.nodes)
    check_target(nhwc_host(), g, tmp_path, n=2)


@needs_gcc
@pytest.mark.parametrize("builder", [qgraph_conv, qgraph_ops, qgraph_all_ops] + per_op_graphs(),
                         ids=lambda f: f.__name__)
def test_host_nhwc_graphs_equal_reference(builder, tmp_path):
    check_target(nhwc_host(), builder(), tmp_path, n=2)


# ---- bit-exact: every QEMU board (DSP / MVE) ----------------------------------------------------

@needs_arm
@pytest.mark.parametrize("board", GRID_BOARDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_board_kernel_grid_equals_reference(board, family, tmp_path):
    """Every case of the kernel grid through `edgeq`'s own code generation (packed
    constants, the memory plan's scratch) on each board, self-checked and run."""
    g = _grid_graph(family)
    rep = check_target(get_target(board), g, tmp_path, n=2)
    assert rep["memory_plan"]["layout"] == "nhwc"
    model_c = (tmp_path / "src" / "model.c").read_text()
    isa = "mve" if board == "cortex-m55" else "dsp"
    assert f"_s8_{isa}(&p" in model_c or f"_{isa}_body(&p" in model_c  # the kernel, or its body specialised


@needs_arm
@pytest.mark.parametrize("board", BOARDS)
def test_board_fit_plan_runs_the_scratch_free_variants(board, tmp_path):
    """--scratch fit: layers without scratch call the portable variant; still exact."""
    g = qgraph_ops()
    rep = check_target(get_target(board), g, tmp_path, n=2, scratch="fit")
    assert rep["memory_plan"]["plan"] == "smallest"
    assert rep["arena_bytes"] == rep["memory_plan"]["arena_bytes_smallest"] <= rep["memory_plan"]["arena_bytes_fastest"]


def _convs(n=3):
    b = G("convs", seed=11)
    y = b.x((1, 8, 8, 8))
    for _ in range(n):
        y = b.conv(y, 8)
    return b.done(y)


@needs_arm
def test_board_short_of_flash_calls_the_shared_kernels(tmp_path):
    """Specialised layers (one copy of the kernel body each) that overflow the part's flash:
    the build links the shared kernels instead, same plan, still exact."""
    g, m55 = _convs(), get_target("cortex-m55")
    spec = check_target(m55, g, tmp_path / "spec", n=1, scratch="always")  # no row chunks: every layer specialised
    assert "_mve_body.h" in (tmp_path / "spec" / "src" / "model.c").read_text()
    shared = check_target(m55.with_budget(flash_bytes=spec["firmware_flash_bytes"] - 1), g, tmp_path / "shared", n=1,
                          scratch="always")
    assert "_mve_body.h" not in (tmp_path / "shared" / "src" / "model.c").read_text()
    assert shared["firmware_flash_bytes"] < spec["firmware_flash_bytes"] and shared["arena_bytes"] == spec["arena_bytes"]
    assert any("shared kernels" in n for n in shared["notices"])


def test_a_check_that_cannot_hold_one_vector_says_so(monkeypatch, tmp_path):
    """A firmware that fits the part but not with even one embedded test vector on the
    emulated board (the M55's 512 KB ITCM is both): one true line, not 'does not fit'."""
    from edgeq.errors import EdgeqError
    m55 = get_target("cortex-m55")

    def overflow(*args, **kw):
        raise EdgeqError("the model does not fit Arm Corstone-300 (cortex-m55): FLASH overflowed by 28 bytes", "-")
    monkeypatch.setattr(type(m55), "_relink_with_vectors", overflow)
    vectors = {"x": np.zeros((4, 8), np.int8)}
    with pytest.raises(EdgeqError, match="fits the part, but not with even one embedded test vector.*28 bytes"):
        m55._check_firmware(tmp_path, {}, vectors, {"y": np.zeros((4, 2), np.int8)})
