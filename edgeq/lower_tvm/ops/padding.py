"""The padded copy of an NHWC input that convolutions read (written to the scratch argument).

Rows of `w * c` contiguous input bytes land at column `pl * c` of rows `stride` bytes
wide; everything else holds the pad value (the input zero point). The TE definition says
so without any division, so `decompose_padding` can split it into a fill of the whole
buffer and a copy of the interior, each a plain vectorizable loop (a 3-channel first
layer would otherwise move its input one byte and one bounds check at a time).
"""
from __future__ import annotations


def padded_rows(x, n: int, h: int, w: int, c: int, pt: int, pl: int, shape: tuple[int, int, int], zp: int):
    """xpad[n, i, j] = x[n, i - pt, j - pl*c] inside the image, else zp; x is [N, H, W*C]."""
    from tvm import te, tirx

    def value(b, i, j):
        ih, jc = i - pt, j - pl * c
        inside = tirx.all(ih >= 0, ih < h, jc >= 0, jc < w * c)
        return te.if_then_else(inside, x[b, ih, jc], tirx.const(zp, "int8"))
    return te.compute(shape, value, name="xpad")


def schedule_padded_rows(sch, block_name: str = "xpad") -> None:
    from tvm.s_tir.schedule import ScheduleError
    block = sch.get_sblock(block_name)
    try:
        fill = sch.decompose_padding(block, sch.get_loops(block)[0])
    except ScheduleError:
        # TVM found nothing to split off (bounds it simplified away): leave the bounds-checked
        # loop scalar, as a vector one could read outside the input in its masked lanes
        return
    for blk in (fill, block):
        inner = sch.get_loops(blk)[-1]
        extent = int(sch.get(inner).extent)
        if extent >= 16:
            _, lanes = sch.split(inner, [None, 16])
            sch.vectorize(lanes)
