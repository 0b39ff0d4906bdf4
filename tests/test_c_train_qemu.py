"""The C training kernels on Cortex-M (QEMU), against the Python training reference.

A self-test firmware embeds, for QConv/QGemm layers (3x3, depthwise stride 2, pointwise,
QGemm; master residual and stochastic modes), the inputs, the rule's constants and the
reference results, runs the layer's backward through the C kernels (mask, input gradient,
normalize, bias update, weight update) plus the cross-entropy gradient, and exits with the
number of mismatching arrays.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edgeq.training import TrainOptions
from edgeq.training.gradient import Grad, limit
from edgeq.training.loss import ce_gradient, loss_params
from edgeq.training.rules import load_rules
from edgeq.training.spec import LayerUpdate

from . import _cbuild as cb
from ._train_graphs import context, conv_graph
from .test_c_kernels_qemu import BOARDS, HARNESS, c_array
from .test_training_rules import CONV_CASES

pytestmark = pytest.mark.qemu
RULES = load_rules()
CASES = [("conv3x3", "master"), ("depthwise_s2", "stochastic"), ("pointwise", "master"), ("gemm", "stochastic")]


class TrainFirmware:
    def __init__(self):
        self.decls, self.blocks = [], []

    def arr(self, name, a, ctype):
        self.decls.append(c_array(name, a, ctype).replace("static const", "static"))
        return name

    def check(self, got, want, ctype, n, what):
        w = self.arr(f"{got}_want", want, ctype)
        return (f"        if (!same_bytes({got}, {w}, {n} * sizeof({ctype}))) "
                f'{{ printf("{what} differs\\n"); ++bad; }}')

    def layer(self, i, case, mode):
        rng = np.random.default_rng(300 + i)
        g, node, env = conv_graph(rng, **CONV_CASES[case])
        opts = TrainOptions(lr=0.02, weight_update=mode, rounding="stochastic" if mode == "stochastic" else "nearest")
        ctx = context(g, node, env, (True, False, False, False, False), LayerUpdate("layer", True, True), opts)
        c, st = ctx.consts(node), ctx.state
        w0, b0 = ctx.weight(node).copy(), st.biases["layer"].copy()
        m = rng.integers(-limit(16), limit(16) + 1, size=env["y"].shape)
        gx = RULES[node.op].backward(ctx, node, Grad(m, -16))[0]
        p = f"c{i}"
        a = node.attrs
        gemm = node.op == "QGemm"
        x_shape, y_shape = env["x"].shape, env["y"].shape
        if gemm:
            params = (f"eq_fc_params p = {{.batch = 1, .in_features = {x_shape[1]}, .out_features = {y_shape[1]}, "
                      f".x_zp = {a['x_zp']}, .y_zp = {a['y_zp']}, .act_min = {a['act_min']}, .act_max = {a['act_max']}}};")
        else:
            params = (f"eq_conv2d_params p = {{.batch = 1, .in_c = {x_shape[1]}, .in_h = {x_shape[2]}, "
                      f".in_w = {x_shape[3]}, .out_c = {y_shape[1]}, .out_h = {y_shape[2]}, .out_w = {y_shape[3]}, "
                      f".kernel_h = {w0.shape[2]}, .kernel_w = {w0.shape[3]}, .stride_h = {a['strides'][0]}, "
                      f".stride_w = {a['strides'][1]}, .pad_top = {a['pads'][0]}, .pad_left = {a['pads'][1]}, "
                      f".pad_bottom = {a['pads'][2]}, .pad_right = {a['pads'][3]}, "
                      f".dilation_h = {a['dilations'][0]}, .dilation_w = {a['dilations'][1]}, "
                      f".groups = {a['group']}, .x_zp = {a['x_zp']}, .y_zp = {a['y_zp']}, "
                      f".act_min = {a['act_min']}, .act_max = {a['act_max']}}};")
        for name, arr, t in (("x", env["x"], "int8_t"), ("y", env["y"], "int8_t"), ("m", m, "int16_t"),
                             ("w", w0, "int8_t"), ("r", np.zeros(w0.shape, np.int8), "int8_t"), ("b", b0, "int32_t"),
                             ("gm", c["gmult"], "int32_t"), ("gs", c["gshift"], "int32_t"),
                             ("bm", c["bmult"], "int32_t"), ("bs", c["bshift"], "int32_t"),
                             ("wm", c["wmult"], "int32_t"), ("ws", c["wshift"], "int32_t"),
                             ("acc", np.zeros(env["x"].size, np.int32), "int32_t"),
                             ("gx", np.zeros(env["x"].size, np.int16), "int16_t")):
            self.arr(f"{p}_{name}", arr, t)
        positions = int(np.prod(y_shape[2:])) if not gemm else 1
        kind = "fc" if gemm else "conv2d"
        lo, hi = c["lo"], c["hi"]
        lines = [f"    {{ /* layer {i}: {case}, {mode} */", f"        {params}",
                 f"        eq_train_weight_params u = {{.fit = {c['wfit']}, .stochastic_fit = {int(mode == 'stochastic')}, "
                 f".stochastic = {int(mode == 'stochastic')}, .frac_bits = {c['frac_bits']}, .qmax = {c['qmax']}}};",
                 f"        eq_draws d = {{{st.draws.seed}u, 0u}};", "        int32_t e = 0;",
                 f"        bad += eq_train_mask({p}_m, {p}_y, {m.size}, {int(lo is not None)}, {lo or 0}, "
                 f"{int(hi is not None)}, {hi or 0}) != EQ_OK;",
                 f"        bad += eq_train_{kind}_input_grad(&p, {p}_m, {p}_w, {p}_gm, {p}_gs, {p}_acc) != EQ_OK;",
                 f"        bad += eq_train_normalize({p}_acc, {env['x'].size}, {-16 - c['gexp']}, 16, "
                 f"{int(mode == 'stochastic')}, &d, {p}_gx, &e) != EQ_OK;",
                 f"        bad += eq_train_bias_update(1, {y_shape[1]}, {positions}, {p}_m, -16, {p}_bm, {p}_bs, "
                 f"{c['blimit']}, NULL, {p}_b) != EQ_OK;",
                 f"        bad += eq_train_{kind}_weight_update(&p, &u, {p}_x, {p}_m, -16, {p}_wm, {p}_ws, NULL, &d, "
                 f"NULL, {p}_w, {p}_r) != EQ_OK;",
                 f'        if (e != {gx.e}) {{ printf("layer {i}: exponent %d\\n", (int)e); ++bad; }}',
                 f'        if (d.counter != {st.draws.counter}u) {{ printf("layer {i}: draws\\n"); ++bad; }}',
                 self.check(f"{p}_gx", gx.m, "int16_t", gx.m.size, f"layer {i} input gradient"),
                 self.check(f"{p}_b", st.biases["layer"], "int32_t", b0.size, f"layer {i} bias"),
                 self.check(f"{p}_w", st.weights["layer"], "int8_t", w0.size, f"layer {i} weights")]
        if mode == "master":
            lines.append(self.check(f"{p}_r", st.residuals["layer"], "int8_t", w0.size, f"layer {i} residual"))
        lines.append("    }")
        self.blocks.append("\n".join(lines))

    def loss(self):
        rng = np.random.default_rng(9)
        for i, (classes, scale) in enumerate(((10, 0.1077), (37, 0.02))):
            q = rng.integers(-128, 128, size=(1, classes)).astype(np.int8)
            prm = loss_params(scale)
            want, _ = ce_gradient(q, 3, prm)
            self.arr(f"l{i}_q", q, "int8_t")
            self.arr(f"l{i}_acc", np.zeros(classes, np.int32), "int32_t")
            self.blocks.append("\n".join([
                f"    bad += eq_train_ce_grad_s8(l{i}_q, {classes}, 3, {prm['input_mult']}, "
                f"{prm['input_left_shift']}, {prm['diff_min']}, l{i}_acc) != EQ_OK;",
                self.check(f"l{i}_acc", want.ravel(), "int32_t", classes, f"loss {i}")]))

    def source(self) -> str:
        return "\n".join([
            "#include <stdint.h>", "#include <stdio.h>", '#include "eq_train.h"', *self.decls,
            "static int same_bytes(const void *a, const void *b, unsigned n)",
            "{ const unsigned char *x = a, *y = b; unsigned i; for (i = 0; i < n; ++i) if (x[i] != y[i]) return 0;"
            " return 1; }",
            "int main(void)", "{", "    int bad = 0;", *self.blocks,
            '    printf("edgeq training kernels: %d failures\\n", bad);', "    return bad;", "}", ""])


@pytest.fixture(scope="module")
def firmware_source(tmp_path_factory):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    fw = TrainFirmware()
    for i, (case, mode) in enumerate(CASES):
        fw.layer(i, case, mode)
    fw.loss()
    d = tmp_path_factory.mktemp("trainfw")
    (d / "main.c").write_text(fw.source())
    return d


@pytest.mark.parametrize("board", ["cortex-m7", "cortex-m3"])
def test_training_kernels_on_qemu(board, firmware_source):
    machine, cpu, flash, ram = BOARDS[board]
    elf = firmware_source / f"{board}.elf"
    srcs = [str(s) for s in sorted(cb.SRC.glob("eq_train_*.c"))]
    build = subprocess.run(
        ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", "-std=c99", "-O2",
         "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", f"-I{cb.INCLUDE}",
         "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles",
         f"-Wl,--defsym=FLASH_ORIGIN={flash}", f"-Wl,--defsym=RAM_ORIGIN={ram}",
         "-T", str(HARNESS / "link.ld"), str(HARNESS / "startup.c"), str(firmware_source / "main.c"),
         *srcs, "-o", str(elf)], capture_output=True, text=True, timeout=180)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
                          "-serial", "none", "-semihosting-config", "enable=on,target=native",
                          "-kernel", str(elf)], capture_output=True, text=True, timeout=60)
    assert "edgeq training kernels: 0 failures" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.returncode == 0
