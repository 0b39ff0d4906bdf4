"""QConv (dense and grouped) and QGemm as one NHWC implicit GEMM with int8 dot products.

The reduction runs over (kh, kw, c) in steps of kg = 4 input values (one `sdot` or NEON
4x4 product against 4 output channels of pre-packed weights) or kg = 16 (one 16-byte
load, four `sdot` by lane), or kg = 8 with i8mm (one `smmla`: 2 pixels x 2 channels x
8 inputs; see "smmla" below). Two ways to walk it:

- "flat" (dense, dilation_w = 1): for one kernel row kh, the KW*C input values a pixel
  needs are contiguous in NHWC, so the reduction is one run r in [0, R) with R = KW*C
  rounded up to kg (zero weights past KW*C). A 3-channel or 1-channel first layer then
  wastes a few products per row, not 3 of every 4 channels.
- "tap" (grouped, or dilation_w > 1): per kernel tap, the group's channels padded to
  C4 = a multiple of 4 (zero weights on the padding channels).
`plan_conv` picks kg, the tiles and the requantization form per layer.

Zero points: acc = sum (x - x_zp) w = sum x w - x_zp sum w, so the kernel multiplies raw
int8 inputs, pads with x_zp (padding then adds x_zp w, which the folded bias
bias' = bias - x_zp sum w cancels) and starts the accumulators at bias' (`init`). The
final acc fits int32 by the compiler's proof, and sdot and vector adds wrap modulo 2^32,
so a partial sum leaving int32 on the way could not change it anyway.

A padded copy of the input (spatial padding, the reduction's overrun, channel padding)
goes to the scratch argument; a layer that needs none (a 1x1 conv, a Gemm) reads its
input in place. Output pixels, numbered p = oh * OW + ow, are tiled by `pt` (a tile past
the last pixel re-reads the last one; those results are never stored), output channels
by `cot`; a tile's pt x cot int32 accumulators live in registers.
Gemm is the 1x1 conv of a [1, 1, N, K] image.

smmla (i8mm CPUs, pointwise convs and Gemm with C % 8 == 0 and at least 2 pixels): the
input is [N, P, C], so two pixels' 8-value runs are C bytes apart; the weights are packed
as 2 channels x 8 inputs per 16-byte block; the accumulator tile is stored in 2x2 blocks
(one `smmla` result, [N, PP/2, COg4/2, 2, 2]), which the requantization reads back. A tile
past the last pixel cannot re-read it (the pair's stride would change), so when the tiles
do not divide the pixels the kernel reads a copy of the input extended to whole tiles
with the last pixel repeated (a clamp at the pair level did not survive compute_at),
requantizes whole tiles into a second scratch buffer (so every tile gets the epilogue
micro-kernel) and copies the P real pixels to the output. Every other layer runs the
sdot schedule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node
from edgeq.reference._common import spatial_attrs
from edgeq.lower_tvm import epilogue, intrinsics, requant as rq
from edgeq.lower_tvm.ops.padding import padded_rows, schedule_padded_rows


@dataclass(frozen=True)
class ConvGeometry:
    n: int
    c: int
    h: int
    w: int
    co: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pl: int
    pb: int
    pr: int
    dh: int
    dw: int
    g: int

    @property
    def oh(self) -> int:
        return (self.h + self.pt + self.pb - self.dh * (self.kh - 1) - 1) // self.sh + 1

    @property
    def ow(self) -> int:
        return (self.w + self.pl + self.pr - self.dw * (self.kw - 1) - 1) // self.sw + 1

    @property
    def cg(self) -> int:
        return self.c // self.g

    @property
    def cog(self) -> int:
        return self.co // self.g

    def is_pointwise(self) -> bool:
        return (self.kh, self.kw, self.sh, self.sw, self.g) == (1, 1, 1, 1, 1) and \
            not any((self.pt, self.pl, self.pb, self.pr))


def conv_geometry(node: Node, graph: Graph) -> ConvGeometry:
    """NCHW shapes and attributes of a QConv (2-D or 1-D) as one 2-D geometry."""
    x = graph.tensors[node.inputs[0]].shape
    w = graph.tensors[node.inputs[1]].shape
    nd = len(x) - 2
    strides, pads, dil = spatial_attrs(node, nd)
    if nd == 1:
        x, w = (x[0], x[1], 1, x[2]), (w[0], w[1], 1, w[2])
        strides, dil, pads = (1,) + strides, (1,) + dil, (0, pads[0], 0, pads[1])
    elif nd != 2:
        raise EdgeqError(f"layer {node.name}: QConv over {nd} spatial dims", "use 1-D or 2-D convolutions")
    return ConvGeometry(int(x[0]), int(x[1]), int(x[2]), int(x[3]), int(w[0]), int(w[2]), int(w[3]),
                        strides[0], strides[1], pads[0], pads[1], pads[2], pads[3],
                        dil[0], dil[1], int(node.attr("group", 1)))


def gemm_geometry(node: Node, graph: Graph) -> ConvGeometry:
    x = graph.tensors[node.inputs[0]].shape
    co, k = graph.tensors[node.inputs[1]].shape
    return ConvGeometry(1, int(k), 1, int(x[0]), int(co), 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1)


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


@dataclass(frozen=True)
class ConvPlan:
    """How one geometry is computed: the reduction walk, tiles and buffer shapes."""
    geo: ConvGeometry
    flat: bool
    pt: int          # output pixels per tile (along W)
    cot: int         # output channels per tile (multiple of 4)
    x_zp: int
    y_zp: int
    act_min: int
    act_max: int
    with_left: bool  # some channel's multiplier needs a left shift
    inner: str       # sdot | neon | smmla
    form: str        # requantization: neon | int64 (edgeq.lower_tvm.requant)
    kg: int          # reduction values per tensorized step: 4, or 16 (one 16-byte load of
                     # the input, four sdot by lane); the run is padded to a multiple of it

    @property
    def c4g(self) -> int:
        return self.geo.cg if self.flat else _round_up(self.geo.cg, 4)

    @property
    def stride(self) -> int:
        """Bytes between two pixels in the (padded) input rows."""
        return self.geo.c if self.flat else self.geo.g * self.c4g

    @property
    def kwr(self) -> int:
        return 1 if self.flat else self.geo.kw

    @property
    def rc(self) -> int:
        """Reduction run per (kh, kwr), padded with zero weights to a multiple of kg:
        KW*C (flat) or C4 (tap)."""
        return _round_up(self.geo.kw * self.geo.c if self.flat else self.c4g, self.kg)

    @property
    def cog4(self) -> int:
        return _round_up(self.geo.cog, self.cot)

    @property
    def pixels(self) -> int:
        return self.geo.oh * self.geo.ow

    @property
    def pp(self) -> int:
        return _round_up(self.pixels, self.pt)

    @property
    def padded_input(self) -> bool:
        g = self.geo
        if self.inner == "smmla":
            return self.pixels % self.pt != 0
        return bool(any((g.pt, g.pl, g.pb, g.pr)) or self.c4g != g.cg or
                    (self.flat and self.rc != g.kw * g.c))

    @property
    def pad_shape(self) -> tuple[int, int, int]:
        """[N, Hp, cols] of the padded copy: rows of `stride`-byte pixels, and spare pixels
        for what the flat reduction reads past the last window (up to kg - 1 bytes)."""
        g = self.geo
        if self.inner == "smmla":
            return (g.n, self.pp, g.c)
        hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1
        wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1
        spare = -(-(self.rc - g.kw * g.c) // g.c) if self.flat else 0
        return (g.n, hp, (wp + spare) * self.stride)

    def key(self) -> dict:
        return {"op": "conv", **self.geo.__dict__, "flat": self.flat, "pt": self.pt, "cot": self.cot,
                "x_zp": self.x_zp, "y_zp": self.y_zp, "act": [self.act_min, self.act_max],
                "left": self.with_left, "inner": self.inner, "form": self.form, "kg": self.kg}


def pixel_tile(pixels: int, most: int) -> int:
    """Output pixels per tile: `most` (16 accumulator registers of 32: 4 pixels x 16
    channels, 8 x 8 or 8 x 4), or the largest count down to three quarters of it that
    divides the pixels: whole tiles skip the bounds check and get the epilogue micro-kernel
    (smaller tiles reload the weights more often: measured, 5 for 125 pixels loses)."""
    most = min(most, pixels)
    return next((t for t in range(most, (3 * most + 3) // 4 - 1, -1) if pixels % t == 0), most)


def smmla_fits(geo: ConvGeometry) -> bool:
    """Pixel pairs at a constant stride and whole 8-value runs: a pointwise conv (as a
    [N, 1, P, C] image) or a Gemm with C % 8 == 0 and two pixels or more."""
    return geo.h == 1 and geo.is_pointwise() and geo.c % 8 == 0 and geo.w >= 2


def pair_tile(pixels: int, most: int) -> int:
    """Output pixels per smmla tile: even; `most`, or an even divisor of the pixels down to
    half of it (whole tiles keep the epilogue micro-kernel and need no input copy)."""
    most = min(most, _round_up(pixels, 2))
    return next((t for t in range(most, most // 2 - 1, -2) if pixels % t == 0), most)


def plan_smmla(geo: ConvGeometry, node: Node, with_left: bool, shift) -> ConvPlan:
    cog = geo.cog
    cot = next((t for t in (16, 8, 4) if cog % t == 0), 16 if cog > 8 else 8 if cog > 4 else 4)
    form = ("neon" if shift is None else rq.neon_form(np.maximum(-np.asarray(shift), 0))) \
        if cog % 4 == 0 else "int64"
    # pt x cot / 4 accumulator registers: 16 of 32 (4 x 16, 8 x 8), A and B take the rest
    pt = pair_tile(geo.w, min(64 // cot, 8))
    return ConvPlan(geo, True, pt, cot, int(node.attr("x_zp", 0)), int(node.attr("y_zp", 0)),
                    int(node.attr("act_min", -128)), int(node.attr("act_max", 127)), with_left, "smmla", form, 8)


def plan_conv(geo: ConvGeometry, node: Node, inner: str, with_left: bool, shift=None) -> ConvPlan:
    if inner == "smmla":
        if smmla_fits(geo):
            return plan_smmla(geo, node, with_left, shift)
        inner = "sdot"
    flat = geo.g == 1 and geo.dw == 1
    cog = geo.cog
    # a channel tile that divides the channels keeps the requantization loop free of
    # bounds checks (vectorizable 4 lanes wide); other counts take the int64 form
    cot = next((t for t in (16, 8, 4) if cog % t == 0), 16 if cog > 8 else 8 if cog > 4 else 4)
    form = ("neon" if shift is None else rq.neon_form(np.maximum(-np.asarray(shift), 0))) \
        if cog % 4 == 0 else "int64"
    run = geo.kw * geo.c if flat else _round_up(geo.cg, 4)
    padded = any((geo.pt, geo.pl, geo.pb, geo.pr)) or not flat or run % 4
    # 16-wide steps cost about 1.25 instructions per sdot against 1.8 for 4-wide ones: worth
    # some zero weights where the input is copied anyway (reading up to 15 bytes past a
    # window must stay inside the buffer). Measured under qemu on 3-channel first layers:
    # a win up to 2x padding at stride 2 (vww01: -12%), a loss at stride 1 (ic01: +27%),
    # so stride-1 runs pad at most a quarter.
    waste = 2 if geo.sw > 1 else 1.25
    kg = 16 if inner == "sdot" and (run % 16 == 0 or (padded and _round_up(run, 16) <= waste * run)) else 4
    if kg == 16 and cog % 8 == 0:
        cot = 8   # 16-wide steps hold cot/4 x 4 weight rows: 8 channels keeps them in registers
    pt = pixel_tile(geo.oh * geo.ow, min(64 // cot, 8))
    if run < 16 and cog > cot and cog % 4 == 0 and cog <= 32 and geo.kh <= 3:
        # A first layer (3x3x3: a handful of steps) with several channel blocks: LLVM unrolls
        # the steps and hoists every input vector of a tile out of the channel-block loop,
        # then spills them (MobileNetV2's stem took 8.7 instructions per output). One tile
        # of all channels and 2 pixels has no such loop.
        kg, cot = 4, cog
        pt = pixel_tile(geo.oh * geo.ow, max(1, 64 // cog))
    return ConvPlan(geo, flat, pt, cot, int(node.attr("x_zp", 0)), int(node.attr("y_zp", 0)),
                    int(node.attr("act_min", -128)), int(node.attr("act_max", 127)), with_left, inner, form, kg)


def weight_shape(plan: ConvPlan) -> tuple[int, ...]:
    g = plan.geo
    if plan.inner == "smmla":
        return (plan.cog4 // plan.cot, plan.rc // 8, plan.cot // 2, 2, 8)
    return (g.g, plan.cog4 // plan.cot, g.kh, plan.kwr, plan.rc // plan.kg, plan.cot // 4, plan.kg // 4, 4, 4)


def pack_weights(plan: ConvPlan, w: np.ndarray) -> np.ndarray:
    """[Co, Cg, KH, KW] int8 -> [G, JB, KH, KWr, RC/kg, COt/4, kg/4, 4, 4]: for one step of
    one tile, the weights of 4 output channels x 4 inputs are one 16-byte row (one
    `sdot`), the kg/4 rows of one channel block back to back."""
    g = plan.geo
    out = np.zeros(weight_shape(plan), np.int8)
    if plan.inner == "smmla":   # [JB, C/8, COt/2, 2, 8]: 2 channels x 8 inputs per block
        j, r = np.arange(g.co)[:, None], np.arange(g.c)[None, :]
        out[j // plan.cot, r // 8, (j % plan.cot) // 2, j % 2, r % 8] = np.asarray(w, np.int8).reshape(g.co, g.c)
        return out
    wg = np.asarray(w, dtype=np.int8).reshape(g.g, g.cog, g.cg, g.kh, g.kw)
    j = np.arange(g.cog)
    jb, jt, ji = j // plan.cot, (j % plan.cot) // 4, j % 4
    for kh in range(g.kh):
        for kw in range(g.kw):
            for c in range(g.cg):
                r = kw * g.c + c if plan.flat else c
                kwr = 0 if plan.flat else kw
                out[:, jb, kh, kwr, r // plan.kg, jt, (r % plan.kg) // 4, ji, r % 4] = wg[:, :, c, kh, kw]
    return out


def channel_params(plan: ConvPlan, w, bias, mult, shift) -> dict[str, np.ndarray]:
    """Per output channel, padded to G * COg4 entries: the folded bias, multiplier, shifts."""
    g = plan.geo
    w64 = np.asarray(w, dtype=np.int64).reshape(g.co, -1)
    b = np.zeros(g.co, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    folded = b - plan.x_zp * w64.sum(axis=1)
    lsh, rsh = rq.split_shifts(np.asarray(shift).reshape(-1))
    arrays = {"bias": folded, "mult": np.asarray(mult, np.int64).reshape(-1), "lshift": lsh,
              "rshift": rq.shift_args(rsh, plan.form)}
    out = {}
    for name, a in arrays.items():
        padded = np.zeros((g.g, plan.cog4), np.int64)
        padded[:, :g.cog] = np.asarray(a, np.int64).reshape(g.g, g.cog)
        if padded.min() < -2**31 or padded.max() >= 2**31:
            raise EdgeqError(f"{name} of a conv does not fit int32", "this is an edgeq bug: please report it")
        out[name] = padded.reshape(-1).astype(np.int32)
    return out


def conv_te(plan: ConvPlan):
    """The TE tensors: (args in kernel order, names of the stages to schedule)."""
    from tvm import te, tirx
    g = plan.geo
    S, C4 = plan.stride, plan.c4g
    smmla = plan.inner == "smmla"
    x = te.placeholder((g.n, g.w, g.c) if smmla else (g.n, g.h, g.w * g.c), "int8", name="x")
    wp = te.placeholder(weight_shape(plan), "int8", name="w")
    chans = g.g * plan.cog4
    bias = te.placeholder((chans,), "int32", name="bias")
    mult = te.placeholder((chans,), "int32", name="mult")
    lsh = te.placeholder((chans,), "int32", name="lshift")
    rsh = te.placeholder((chans,), "int32", name="rshift")
    zp8 = tirx.const(plan.x_zp, "int8")

    if plan.padded_input and smmla:
        src = te.compute(plan.pad_shape, lambda n, p, c: x[n, tirx.min(p, plan.pixels - 1), c], name="xpad")
    elif plan.padded_input and plan.flat:
        src = padded_rows(x, g.n, g.h, g.w, g.c, g.pt, g.pl, plan.pad_shape, plan.x_zp)
    elif plan.padded_input:   # channel padding per group: a division per byte, rare layers
        def pad_value(n, i, j):
            iw, ch = j // S, j % S
            gi, c = ch // C4, ch % C4
            ih, iw = i - g.pt, iw - g.pl
            inside = tirx.all(ih >= 0, ih < g.h, iw >= 0, iw < g.w, c < g.cg)
            return te.if_then_else(inside, x[n, ih, iw * g.c + gi * g.cg + c], zp8)
        src = te.compute(plan.pad_shape, pad_value, name="xpad")
    else:
        src = x

    kh = te.reduce_axis((0, g.kh), name="kh")
    kw = te.reduce_axis((0, plan.kwr), name="kw")
    r = te.reduce_axis((0, plan.rc), name="r")

    def acc_pairs(n, p, j):
        b = wp[j // plan.cot, r // 8, (j % plan.cot) // 2, j % 2, r % 8].astype("int32")
        return te.sum(src[n, p, r].astype("int32") * b, axis=[kh, kw, r])

    def acc_value(n, p, gi, j):
        pc = tirx.min(p, plan.pixels - 1)
        oh, ow = pc // g.ow, pc % g.ow
        col = ow * (g.sw * S) + kw * (g.dw * S) + r
        if not plan.flat:
            col = col + gi * C4
        a = src[n, oh * g.sh + kh * g.dh, col].astype("int32")
        kg = plan.kg
        b = wp[gi, j // plan.cot, kh, kw, r // kg, (j % plan.cot) // 4, (r % kg) // 4, j % 4, r % 4].astype("int32")
        return te.sum(a * b, axis=[kh, kw, r])
    if smmla:   # no group axis: a 2x2 block's rows and columns must be the last two axes
        acc = te.compute((g.n, plan.pp, plan.cog4), acc_pairs, name="acc")
    else:
        acc = te.compute((g.n, plan.pp, g.g, plan.cog4), acc_value, name="acc")

    def y_value(n, p, gi, j):
        ch = gi * plan.cog4 + j
        v = rq.mbqm((acc[n, p, j] if smmla else acc[n, p, gi, j]), mult[ch], lsh[ch], rsh[ch], plan.with_left, plan.form)
        return rq.clamp_to_int8(v, plan.y_zp, plan.act_min, plan.act_max)
    if smmla and plan.padded_input:
        # whole tiles of results to scratch (the epilogue micro-kernel takes no partial
        # tile), then one copy of the P real pixels to the output
        ytiles = te.compute((g.n, plan.pp, g.g, g.cog), y_value, name="ytiles")
        y = te.compute((g.n, plan.pixels, g.g, g.cog), lambda n, p, gi, j: ytiles[n, p, gi, j], name="y")
        return [x, wp, bias, mult, lsh, rsh, src, ytiles, y]
    y = te.compute((g.n, plan.pixels, g.g, g.cog), y_value, name="y")
    args = [x, wp, bias, mult, lsh, rsh] + ([src] if plan.padded_input else []) + [y]
    return args


def vectorize_by_4(sch, loop) -> None:
    """Vectorize a requantization loop 4 lanes at a time (the NEON form's intrinsics are
    4 x int32; a loop of other lengths stays scalar)."""
    extent = sch.get(loop).extent
    if int(extent) % 4 == 0:
        outer, inner = sch.split(loop, [None, 4])
        sch.unroll(outer)
        sch.vectorize(inner)


def hide_init_reads(sch, update) -> None:
    """After decompose_reduction, the update block still lists the bias its init read
    (appended last by objects.prim_func); tensorize matches reads exactly, so hide it."""
    reads = sch.get(update).reads
    if reads and reads[-1].source.name == "bias":
        sch.unsafe_hide_buffer_access(update, "read", [len(reads) - 1])


def finish_requantization(sch, loop, lanes: int, form: str, y_zp: int, act_min: int, act_max: int,
                          with_left: bool, whole_tiles: bool) -> None:
    """A run of 8 to 32 output channels in the NEON form: the epilogue micro-kernel
    (edgeq.lower_tvm.epilogue); otherwise 4-lane vectors. Only where the pixel tiles
    divide the pixels: tensorize cannot match a block under the bounds check of a
    partial tile."""
    if form in rq.NEON_FORMS and lanes in (8, 16, 24, 32) and int(sch.get(loop).extent) == lanes and whole_tiles:
        sch.tensorize(loop, epilogue.register(lanes, y_zp, act_min, act_max, with_left, form))
    else:
        vectorize_by_4(sch, loop)


def schedule_smmla(plan: ConvPlan, func):
    from tvm import s_tir
    sch = s_tir.Schedule(func)
    acc, y = sch.get_sblock("acc"), sch.get_sblock("ytiles" if plan.padded_input else "y")
    # the requantization reads a row-major copy of the tile (zip instructions in registers)
    rows = sch.cache_read(y, 0, "global")
    sch.transform_layout(acc, ("write", 0), lambda n, p, j: (n, p // 2, j // 2, p % 2, j % 2))
    n, p, j, kh, kw, r = sch.get_loops(acc)
    p_o, q, i = sch.split(p, [None, plan.pt // 2, 2])
    j_b, j_t, j_i = sch.split(j, [None, plan.cot // 2, 2])
    r_o, r_i = sch.split(r, [None, 8])
    sch.reorder(n, p_o, j_b, kh, kw, r_o, q, j_t, i, j_i, r_i)
    sch.reverse_compute_at(rows, j_b)
    sch.reverse_compute_at(y, j_b)
    init = sch.decompose_reduction(acc, kh)
    hide_init_reads(sch, acc)
    sch.tensorize(i, intrinsics.register()["smmla"])
    *_, rp, rj = sch.get_loops(rows)
    sch.unroll(rp)
    vectorize_by_4(sch, rj)
    sch.unroll(q)
    sch.unroll(j_t)
    *_, i_q, i_jt, i_i, i_ji = sch.get_loops(init)
    sch.reorder(i_q, i_i, i_jt, i_ji)
    sch.unroll(i_q)
    sch.unroll(i_i)
    vectorize_by_4(sch, sch.fuse(i_jt, i_ji))
    *_, y_p, y_j = sch.get_loops(y)
    sch.unroll(y_p)
    # with a left shift the epilogue's description did not match this block (lshift's
    # index, under the cache_read: not understood yet), so those layers take 4-lane vectors
    finish_requantization(sch, y_j, plan.cot, plan.form, plan.y_zp, plan.act_min, plan.act_max, plan.with_left,
                          not plan.with_left)
    if plan.padded_input:   # C % 8 == 0: 16- or 8-byte vectors
        *_, c = sch.get_loops(sch.get_sblock("xpad"))
        _, lanes = sch.split(c, [None, 16 if plan.geo.c % 16 == 0 else 8])
        sch.vectorize(lanes)
        sch.fuse(*sch.get_loops(sch.get_sblock("y")))   # a contiguous copy: LLVM vectorizes it
    return sch.mod["main"]


def schedule_conv(plan: ConvPlan, func):
    from tvm import s_tir
    if plan.inner == "smmla":
        return schedule_smmla(plan, func)
    sch = s_tir.Schedule(func)
    acc, y = sch.get_sblock("acc"), sch.get_sblock("y")
    n, p, gi, j, kh, kw, r = sch.get_loops(acc)
    p_o, p_i = sch.split(p, [None, plan.pt])
    j_b, j_t, j_i = sch.split(j, [None, plan.cot // 4, 4])
    r_o, r_i = sch.split(r, [None, plan.kg])
    sch.reorder(n, p_o, gi, j_b, kh, kw, r_o, p_i, j_t, j_i, r_i)
    sch.reverse_compute_at(y, j_b)
    init = sch.decompose_reduction(acc, kh)
    hide_init_reads(sch, acc)
    sch.tensorize(j_i, intrinsics.register()["sdot16" if plan.kg == 16 else plan.inner])
    sch.unroll(p_i)
    sch.unroll(j_t)
    *_, i_p, i_jt, i_ji = sch.get_loops(init)
    sch.unroll(i_p)
    sch.vectorize(sch.fuse(i_jt, i_ji))
    *_, y_p, y_j = sch.get_loops(y)
    sch.unroll(y_p)
    finish_requantization(sch, y_j, plan.cot, plan.form, plan.y_zp, plan.act_min, plan.act_max, plan.with_left,
                          plan.pixels % plan.pt == 0)
    if plan.padded_input and plan.flat:
        schedule_padded_rows(sch)
    elif plan.padded_input:
        pad = sch.get_sblock("xpad")
        *_, col = sch.get_loops(pad)
        sch.split(col, [None, plan.stride])
    return sch.mod["main"]


class ConvLowering:
    """A QConv (not depthwise) or a QGemm node as a kernel (see edgeq.lower_tvm.lower)."""

    def __init__(self, node: Node, graph: Graph, cpu, gemm: bool = False, k_order=None):
        """`k_order` (Gemm only): the logical feature at each stored input column, when the
        input arrives in another order (a flattened NHWC image): the weight columns are
        permuted to match at compile time."""
        self.op = "QGemm" if gemm else "QConv"
        self.k_order = None if k_order is None else np.asarray(k_order)
        self.node, self.graph = node, graph
        geo = gemm_geometry(node, graph) if gemm else conv_geometry(node, graph)
        if not gemm and geo.is_pointwise():   # [N, H, W, C] is a [N, 1, H*W, C] image
            geo = ConvGeometry(geo.n, geo.c, 1, geo.h * geo.w, geo.co, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1)
        const = [graph.const(t) if t else None for t in node.inputs[1:5]]
        self.w, self.bias, self.mult, self.shift = const
        if self.w is None or self.mult is None or self.shift is None:
            raise EdgeqError(f"layer {node.name}: {self.op} weights and multipliers must be constants",
                             "this is an edgeq bug: the quantizer makes them constants")
        with_left = bool(np.max(self.shift) > 0)
        self.plan = plan_conv(geo, node, cpu.inner_product, with_left, self.shift)

    def key(self) -> dict:
        return self.plan.key()

    @property
    def init(self) -> dict[str, str]:
        """The accumulators start at the folded bias (edgeq.lower_tvm.objects.prim_func)."""
        if self.plan.inner == "smmla":
            return {"acc": "bias[v_j]"}
        return {"acc": f"bias[v_gi * {self.plan.cog4} + v_j]"}

    def te_args(self) -> list:
        return conv_te(self.plan)

    def schedule(self, func):
        return schedule_conv(self.plan, func)

    def consts(self) -> dict[str, np.ndarray]:
        w = np.asarray(self.w)
        if self.op == "QGemm":
            if self.k_order is not None:
                w = w[:, self.k_order]
            w = w.reshape(w.shape[0], w.shape[1], 1, 1)
        elif w.ndim == 3:
            w = w[:, :, None, :]
        return {"w": pack_weights(self.plan, w),
                **channel_params(self.plan, w, self.bias, self.mult, self.shift)}

    def io(self) -> dict[str, str]:
        return {"x": self.node.inputs[0], "y": self.node.outputs[0]}
