"""Row chunks (edgeq/codegen/row_chunks.py): the default `--scratch fast` plan runs a conv
whose scratch would raise the arena in ranges of output rows, each with its scratch in dead
bytes. The range params must give exactly the rows of the whole conv (checked with the
integer reference), the plan must keep the smallest arena, and the firmware must equal the
reference on the DSP and MVE boards."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeq.codegen import plan_build
from edgeq.codegen.kernels import choice_for_cpu, kernel_of
from edgeq.codegen.ops_nhwc import conv_fields
from edgeq.codegen.row_chunks import row_range_fields
from edgeq.reference.interpreter import run_reference
from edgeq.targets import get_target

from .test_codegen_host import G, check_target, rand_feeds

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                               reason="arm-none-eabi-gcc / qemu-system-arm missing")

# (in_c, h, w, out_c, k, stride, pads t/l/b/r, dilation, group)
CONVS = [(4, 9, 5, 6, 3, 1, (1, 1, 1, 1), 1, 1), (4, 10, 5, 6, 3, 2, (1, 1, 1, 1), 1, 1),
         (4, 11, 5, 6, 3, 2, (0, 0, 1, 1), 1, 1), (3, 12, 4, 5, 5, 2, (2, 1, 1, 2), 1, 1),
         (4, 9, 6, 4, 3, 1, (1, 1, 1, 1), 2, 4), (4, 8, 3, 8, 1, 1, (0, 0, 0, 0), 1, 1),
         (8, 7, 3, 8, 3, 2, (1, 1, 1, 1), 1, 8), (2, 9, 1, 4, (5, 1), 1, (0, 0, 0, 0), 1, 2)]


def _one_conv(case, seed):
    ci, h, w, co, k, st, pads, dil, grp = case
    b = G("one", seed)
    y = b.conv(b.x((1, ci, h, w)), co, k=k, stride=st, pads=pads, group=grp, dil=dil)
    return b.done(y)


@pytest.mark.parametrize("case", CONVS, ids=lambda c: "x".join(map(str, c[:5])) + f"_s{c[5]}")
def test_row_ranges_give_the_whole_convs_rows(case):
    """Every split of the output rows: each range's params (its input rows, the pads it
    still has) run by the integer reference give the whole conv's rows, byte for byte."""
    g = _one_conv(case, seed=len(case[6]) + case[5])
    node = g.nodes[0]
    f = conv_fields(node, g)
    x = rand_feeds(g, 1)[g.inputs[0]]
    whole = run_reference(g, {g.inputs[0]: x})[g.outputs[0]]
    for r in range(1, f["out_h"]):
        rows = []
        for a, b in ((0, r), (r, f["out_h"])):
            p, first = row_range_fields(f, a, b)
            assert p["out_h"] == b - a and min(p["pad_top"], p["pad_bottom"]) >= 0
            sub = _one_conv(case, seed=len(case[6]) + case[5])
            sub.nodes[0].attrs["pads"] = [p["pad_top"], f["pad_left"], p["pad_bottom"], f["pad_right"]]
            t = sub.tensors[sub.inputs[0]]
            t.shape = (1, f["in_c"], p["in_h"], f["in_w"])
            sub.tensors[sub.outputs[0]].shape = (1, f["out_c"], b - a, f["out_w"])
            part = x[:, :, first:first + p["in_h"]]
            rows.append(run_reference(sub, {sub.inputs[0]: part})[sub.outputs[0]])
        assert np.array_equal(np.concatenate(rows, axis=2), whole), r


def peak_chain():
    """Every conv kind at the arena's peak (input and output the same size, the input dead
    after it), so each one's scratch would raise the arena."""
    b = G("peak", seed=5)
    x = b.x((1, 16, 12, 10))
    y = b.conv(x, 16)                                         # 3x3 general conv
    y = b.conv(y, 16, group=16)                               # depthwise 3x3
    y = b.conv(y, 16, k=(3, 1), pads=(1, 0, 1, 0), group=16)  # depthwise, not 3x3
    y = b.conv(y, 16, k=1, pads=(0, 0, 0, 0), relu=True)      # pointwise
    y = b.conv(y, 32, stride=2)                               # 3x3 stride 2: dead rows and a gap
    return b.done(b.gemm(b.reshape(y, (1, 32 * 6 * 5)), 10))


@pytest.mark.parametrize("cpu", ["cortex-m7", "cortex-m55"])
def test_fast_plan_keeps_the_smallest_arena_with_the_fast_kernels(cpu):
    g = peak_chain()
    fast, fit = plan_build(g, choice_for_cpu(cpu), "fast"), plan_build(g, choice_for_cpu(cpu), "fit")
    assert fast.policy == "rows" and fast.plan.arena_bytes == fit.plan.arena_bytes == fast.arenas["smallest"]
    assert fast.arenas["smallest"] < fast.arenas["fastest"]
    assert fit.plan.direct and fast.plan.direct == [] and set(fast.plan.chunks) == set(fit.plan.direct)
    for name in fast.plan.chunks:  # the fast kernel, not the portable one
        assert not kernel_of(fast.graph.node_by_name(name), fast.graph, fast.kernels).function.endswith("_c")


def test_a_conv_whose_input_lives_on_uses_only_its_output_rows():
    """A residual input is read later: its rows are never scratch."""
    b = G("residual", seed=3)
    x = b.x((1, 8, 8, 8))
    y = b.conv(x, 8)
    g = b.done(b.add(y, x))
    build = plan_build(g, choice_for_cpu("cortex-m7"), "fast")
    plan, node = build.plan, build.graph.nodes[0]
    lo, hi = plan.offsets[node.inputs[0]], plan.offsets[node.inputs[0]] + plan.sizes[node.inputs[0]]
    for _, _, at in plan.chunks.get(node.name, []):
        assert not lo <= at < hi


@needs_arm
@pytest.mark.parametrize("board", ["cortex-m7", "cortex-m55"])
def test_board_row_chunks_equal_reference(board, tmp_path):
    rep = check_target(get_target(board), peak_chain(), tmp_path, n=2)
    mp = rep["memory_plan"]
    assert mp["row_chunks"] and not mp["direct"] and rep["arena_bytes"] == mp["arena_bytes_smallest"]
    assert "ranges of output rows" in (tmp_path / "src" / "model.c").read_text()
