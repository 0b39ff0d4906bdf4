"""The C kernels on real Cortex-M instruction sets (QEMU boards), against the integer reference.

A self-test firmware embeds inputs, parameters and the reference outputs, runs each kernel
(conv2d and fully_connected, int8 and packed int4 weights, on both the direct and the
scratch/im2col path, where the Cortex-M4/M7/M33/M55 use the __ARM_FEATURE_DSP __smlad dot
product and the Cortex-M3 the portable one) and exits with the number of mismatches. QEMU enforces each core's ISA, so
this is also the check that the DSP code is legal where it is compiled.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from edgeq import fixedpoint as fp
from edgeq.reference import load_all, run_node
from edgeq.reference.avgpool import avgpool_recips
from edgeq.reference.conv import conv_accumulate
from edgeq.reference.softmax import softmax_params

from . import _cbuild as cb
from ._ckernels import mults_shifts, node, rand_i8
from .test_c_kernels import CONV_CASES
from .test_int4 import S4_CONV_CASES

pytestmark = pytest.mark.qemu
load_all()

HARNESS = cb.HARNESS / "arm"
# board: (machine, cpu, flash origin, ram origin)
BOARDS = {
    "cortex-m3": ("mps2-an385", "cortex-m3", 0x0, 0x20000000),
    "cortex-m4": ("mps2-an386", "cortex-m4", 0x0, 0x20000000),
    "cortex-m7": ("mps2-an500", "cortex-m7", 0x0, 0x20000000),
    "cortex-m33": ("mps2-an505", "cortex-m33", 0x10000000, 0x38000000),
    "cortex-m55": ("mps3-an547", "cortex-m55", 0x0, 0x20000000),
}


def c_array(name: str, a: np.ndarray, ctype: str) -> str:
    vals = ", ".join(str(int(v)) for v in np.ravel(a))
    return f"static const {ctype} {name}[{max(a.size, 1)}] = {{{vals or '0'}}};\n"


def c_struct(ctype: str, fields: dict) -> str:
    def val(v):
        return "{" + ", ".join(str(int(e)) for e in v) + "}" if isinstance(v, (list, tuple)) else str(int(v))
    return f"static const {ctype} p = {{" + ", ".join(f".{k} = {val(v)}" for k, v in fields.items()) + "};"


class Firmware:
    """Collects cases; each becomes a block in main() comparing the kernel with `want`."""

    def __init__(self):
        self.decls: list[str] = []
        self.blocks: list[str] = []
        self.max_out = 1

    def case(self, call: str, ctype: str, fields: dict, arrays: dict[str, tuple[np.ndarray, str]],
             want: np.ndarray, paths: tuple[str, ...] = ("NULL",)):
        i = len(self.blocks)
        for k, (a, t) in arrays.items():
            self.decls.append(c_array(f"c{i}_{k}", a, t))
        self.decls.append(c_array(f"c{i}_want", want, "int8_t"))
        self.max_out = max(self.max_out, want.size)
        body = call.replace("@", f"c{i}_")
        lines = [f"    {{ /* case {i} */", f"        {c_struct(ctype, fields)}" if ctype else ""]
        for path in paths:
            lines += [f"        fill(out, {want.size});",
                      f"        st = {body.replace('SCRATCH', path)};",
                      f"        if (st != EQ_OK || !same(out, c{i}_want, {want.size})) {{",
                      f'            printf("case {i} scratch={path}: status %d\\n", (int)st); ++bad;',
                      "        }"]
        lines.append("    }")
        self.blocks.append("\n".join(lines))

    def source(self) -> str:
        return "\n".join([
            "#include <stdint.h>", "#include <stdio.h>", '#include "eq_kernels.h"',
            *self.decls,
            f"static int8_t out[{self.max_out}];",
            "static uint8_t scratch_buf[16384];",
            "static void fill(int8_t *o, int n) { int i; for (i = 0; i < n; ++i) o[i] = 0x55; }",
            "static int same(const int8_t *a, const int8_t *b, int n)",
            "{ int i; for (i = 0; i < n; ++i) if (a[i] != b[i]) return 0; return 1; }",
            "int main(void)", "{", "    int bad = 0;", "    eq_status st;",
            *self.blocks,
            '    printf("edgeq kernels: %d failures\\n", bad);', "    return bad;", "}", ""])


def build_cases() -> Firmware:
    fw = Firmware()
    scratch = ("NULL", "scratch_buf + 1")  # misaligned on purpose: the kernel aligns it
    for case in CONV_CASES[:8]:
        n, ci, h, w, co, kh, kw, st, pads, dil, g = case
        rng = np.random.default_rng(sum(case[:7]) + 77)
        zps = (-128, 127) if ci % 2 else (17, -5)
        x, wt = rand_i8(rng, (n, ci, h, w)), rand_i8(rng, (co, ci // g, kh, kw), -127, 127)
        bias = rng.integers(-4000 * ci, 4000 * ci, co).astype(np.int32)
        nd = node("QConv", strides=list(st), pads=list(pads), dilations=list(dil), group=g,
                  x_zp=zps[0], y_zp=zps[1], act_min=-128, act_max=127)
        m, s = mults_shifts(rng, co, np.abs(conv_accumulate(nd, x, wt, bias, 2)).max(axis=(0, 2, 3)))
        ref = run_node(nd, [x, wt, bias, m, s])
        fields = dict(batch=n, in_c=ci, in_h=h, in_w=w, out_c=co, out_h=ref.shape[2],
                      out_w=ref.shape[3], kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1],
                      pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                      dilation_h=dil[0], dilation_w=dil[1], groups=g, x_zp=zps[0], y_zp=zps[1],
                      act_min=-128, act_max=127)
        fw.case("eq_conv2d_s8(&p, @x, @w, @b, @m, @s, SCRATCH, out)", "eq_conv2d_params", fields,
                {"x": (x, "int8_t"), "w": (wt, "int8_t"), "b": (bias, "int32_t"), "m": (m, "int32_t"),
                 "s": (s, "int32_t")}, ref, scratch)
    for nb, k, co in ((1, 7, 5), (2, 64, 10), (1, 255, 3)):
        rng = np.random.default_rng(k)
        x, wt = rand_i8(rng, (nb, k)), rand_i8(rng, (co, k), -127, 127)
        bias = rng.integers(-9999, 9999, co).astype(np.int32)
        acc = (x.astype(np.int64) + 3) @ wt.astype(np.int64).T + bias
        m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
        ref = run_node(node("QGemm", x_zp=-3, y_zp=9), [x, wt, bias, m, s])
        fw.case("eq_fully_connected_s8(&p, @x, @w, @b, @m, @s, SCRATCH, out)", "eq_fc_params",
                dict(batch=nb, in_features=k, out_features=co, x_zp=-3, y_zp=9, act_min=-128, act_max=127),
                {"x": (x, "int8_t"), "w": (wt, "int8_t"), "b": (bias, "int32_t"), "m": (m, "int32_t"),
                 "s": (s, "int32_t")}, ref, scratch)
    build_s4_cases(fw, scratch)
    rng = np.random.default_rng(5)
    for scale, depth in ((0.1, 10), (1 / 256, 37), (0.03, 600)):
        x = rand_i8(rng, (3, depth))
        x[1] = 9
        prm = softmax_params(scale)
        ref = run_node(node("QSoftmax", axis=-1, **prm), [x])
        fw.case("eq_softmax_s8(&p, @x, out)", "eq_softmax_params",
                dict(outer=3, depth=depth, inner=1, **prm), {"x": (x, "int8_t")}, ref)
    x = rand_i8(rng, (1, 3, 9, 9))
    recip, rshift = avgpool_recips(3, 3)
    ref = run_node(node("QAvgPool", kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 0],
                        count_include_pad=1, x_zp=-7, recip=recip, rshift=rshift), [x])
    fw.case("eq_avgpool_s8(&p, @x, @r, @s, out)", "eq_pool_params",
            dict(batch=1, channels=3, in_h=9, in_w=9, out_h=ref.shape[2], out_w=ref.shape[3],
                 kernel_h=3, kernel_w=3, stride_h=2, stride_w=2, pad_top=1, pad_left=1, pad_bottom=1,
                 pad_right=0, dilation_h=1, dilation_w=1, count_include_pad=1, x_zp=-7,
                 act_min=-128, act_max=127),
            {"x": (x, "int8_t"), "r": (np.array(recip), "int32_t"), "s": (np.array(rshift), "int32_t")}, ref)
    a, b = rand_i8(rng, (1, 4, 3, 3)), rand_i8(rng, (1, 4, 1, 1))
    am, ash = fp.quantize_multiplier(0.5)
    bm, bsh = fp.quantize_multiplier(0.31)
    ym, ysh = fp.quantize_multiplier(2 * 0.1 / ((1 << 20) * 0.07))
    at = dict(a_zp=-128, b_zp=127, y_zp=4, left_shift=20, a_mult=am, a_shift=ash, b_mult=bm,
              b_shift=bsh, y_mult=ym, y_shift=ysh, act_min=-128, act_max=127)
    ref = run_node(node("QAdd", **at), [a, b])
    fw.case("eq_add_s8(&p, @a, @b, out)", "eq_add_params",
            dict(a_dims=[1, 4, 3, 3], b_dims=[1, 4, 1, 1], y_dims=[1, 4, 3, 3], **at),
            {"a": (a, "int8_t"), "b": (b, "int8_t")}, ref)
    return fw


def build_s4_cases(fw: Firmware, scratch) -> None:
    """int4 weights packed two per byte: the DSP unpacking (8 values per word) and its
    odd-K tails, against the reference run on the unpacked values."""
    from edgeq.codegen.carray import pack_s4
    for case in S4_CONV_CASES:
        n, ci, h, w, co, kh, kw, st, pads, dil, g = case
        rng = np.random.default_rng(sum(case[:7]) + 4)
        x, wt = rand_i8(rng, (n, ci, h, w)), rand_i8(rng, (co, ci // g, kh, kw), -8, 7)
        bias = rng.integers(-300 * ci, 300 * ci, co).astype(np.int32)
        nd = node("QConv", strides=list(st), pads=list(pads), dilations=list(dil), group=g,
                  x_zp=-128, y_zp=5, act_min=-128, act_max=127)
        m, s = mults_shifts(rng, co, np.abs(conv_accumulate(nd, x, wt, bias, 2)).max(axis=(0, 2, 3)))
        ref = run_node(nd, [x, wt, bias, m, s])
        fields = dict(batch=n, in_c=ci, in_h=h, in_w=w, out_c=co, out_h=ref.shape[2],
                      out_w=ref.shape[3], kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1],
                      pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3],
                      dilation_h=dil[0], dilation_w=dil[1], groups=g, x_zp=-128, y_zp=5,
                      act_min=-128, act_max=127)
        fw.case("eq_conv2d_s4(&p, @x, @w, @b, @m, @s, SCRATCH, out)", "eq_conv2d_params", fields,
                {"x": (x, "int8_t"), "w": (pack_s4(wt), "uint8_t"), "b": (bias, "int32_t"),
                 "m": (m, "int32_t"), "s": (s, "int32_t")}, ref, scratch)
    for nb, k, co in ((1, 7, 5), (2, 64, 10), (1, 255, 3)):
        rng = np.random.default_rng(k + 4)
        x, wt = rand_i8(rng, (nb, k)), rand_i8(rng, (co, k), -8, 7)
        bias = rng.integers(-999, 999, co).astype(np.int32)
        acc = (x.astype(np.int64) + 3) @ wt.astype(np.int64).T + bias
        m, s = mults_shifts(rng, co, np.abs(acc).max(axis=0))
        ref = run_node(node("QGemm", x_zp=-3, y_zp=9), [x, wt, bias, m, s])
        fw.case("eq_fully_connected_s4(&p, @x, @w, @b, @m, @s, SCRATCH, out)", "eq_fc_params",
                dict(batch=nb, in_features=k, out_features=co, x_zp=-3, y_zp=9, act_min=-128, act_max=127),
                {"x": (x, "int8_t"), "w": (pack_s4(wt), "uint8_t"), "b": (bias, "int32_t"),
                 "m": (m, "int32_t"), "s": (s, "int32_t")}, ref, scratch)


@pytest.fixture(scope="module")
def firmware_source(tmp_path_factory):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    d = tmp_path_factory.mktemp("armfw")
    (d / "main.c").write_text(build_cases().source())
    return d


@pytest.mark.parametrize("board", list(BOARDS))
def test_kernels_on_qemu(board, firmware_source):
    machine, cpu, flash, ram = BOARDS[board]
    elf = firmware_source / f"{board}.elf"
    srcs = [str(s) for s in sorted(cb.SRC.glob("*.c"))]
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
    assert "edgeq kernels: 0 failures" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.returncode == 0
    if board != "cortex-m3":  # the DSP dot product really is in the image
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True)
        assert "smlad" in dis.stdout
