"""Tensor intrinsics for the int8 inner products, registered once under edgeq's own names.

Each one computes C[4] (int32) += A[4] . B[4, 4]^T: four input values of one pixel
against a 16-byte block of pre-packed weights holding 4 output channels x 4 inputs.

- `edgeq_sdot_4x4`: one `sdot` (Armv8.2 dotprod) with A broadcast to every lane.
- `edgeq_neon_4x4`: every Armv8-A core: two `smull` (int8 x int8 -> int16 lanes), two
  pairwise widening adds and one pairwise add into the 4 int32 lanes.
- `edgeq_sdot_4x16`: four consecutive reduction steps at once, C[4] += A[16] . B[4][4, 4]:
  one 16-byte load of A and four `sdot` by lane (`sdot v.4s, b.16b, a.4b[g]`), so A costs
  one load with an immediate offset instead of four broadcast loads and address adds.
- `edgeq_smmla_2x2x8` (another shape): C[2, 2] (int32) += A[2, 8] . B[2, 8]^T, two pixels
  by two output channels over 8 inputs: one `smmla` (Armv8.6 i8mm, 32 products). A's
  rows are two pixels `s` bytes apart (two 8-byte loads), C one 2x2 block of a blocked
  accumulator, B one 16-byte block of pre-packed weights (2 channels x 8 inputs).

TVM ships equivalent intrinsics, but their buffers ask for 64-byte alignment, which
edgeq's arena does not give (see objects.prim_func); these declare 1-byte alignment.
Importing TVM's arm_cpu intrinsic module also registers dozens of SME variants and takes
seconds, so we do not.
"""
from __future__ import annotations

from functools import lru_cache

SDOT = "edgeq_sdot_4x4"
NEON = "edgeq_neon_4x4"
SDOT16 = "edgeq_sdot_4x16"
SMMLA = "edgeq_smmla_2x2x8"


@lru_cache(maxsize=None)
def register() -> dict[str, str]:
    from tvm import s_tir
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int8", offset_factor=1, align=1)
        B = T.match_buffer(b, (4, 4), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:4], B[0:4, 0:4])
            T.writes(C[0:4])
            for i, k in T.grid(4, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.Cast("int32", A[vk]) * T.Cast("int32", B[vi, vk])

    @T.prim_func(s_tir=True)
    def sdot(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int8", offset_factor=1, align=1)
        B = T.match_buffer(b, (4, 4), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:4], B[0:4, 0:4])
            T.writes(C[0:4])
            # no local names here: TVMScript would make each one a buffer
            C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                C.vload([0], "int32x4"), B.vload([0, 0], "int8x16"),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 4),
                              dtype="int8x16"),
                dtype="int32x4")

    @T.prim_func(s_tir=True)
    def neon(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int8", offset_factor=1, align=1)
        B = T.match_buffer(b, (4, 4), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:4], B[0:4, 0:4])
            T.writes(C[0:4])
            C[T.ramp(T.int32(0), 1, 4)] += T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.addp.v4i32"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                        T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 2),
                                      dtype="int8x8"),
                        T.vectorlow(B.vload([0, 0], "int8x16"), dtype="int8x8"), dtype="int16x8"),
                    dtype="int32x4"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.saddlp.v4i32.v8i16"),
                    T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smull.v8i16"),
                        T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "int8x4"), dtype="int32"), 2),
                                      dtype="int8x8"),
                        T.vectorhigh(B.vload([0, 0], "int8x16"), dtype="int8x8"), dtype="int16x8"),
                    dtype="int32x4"),
                dtype="int32x4")

    @T.prim_func(s_tir=True)
    def desc16(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (16,), "int8", offset_factor=1, align=1)
        B = T.match_buffer(b, (4, 4, 4), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:16], B[0:4, 0:4, 0:4])
            T.writes(C[0:4])
            for i, k in T.grid(4, 16):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.Cast("int32", A[vk]) * T.Cast("int32", B[vk // 4, vi, vk % 4])

    @T.prim_func(s_tir=True)
    def sdot16(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (16,), "int8", offset_factor=1, align=1)
        B = T.match_buffer(b, (4, 4, 4), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (4,), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:4], A[0:16], B[0:4, 0:4, 0:4])
            T.writes(C[0:4])
            # four sdot, each with one 4-byte lane of A broadcast (LLVM selects the by-lane form)
            C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                    T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                        T.call_llvm_pure_intrin(
                            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.sdot.v4i32.v16i8"),
                            C.vload([0], "int32x4"), B.vload([0, 0, 0], "int8x16"),
                            T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4")], [0, 0, 0, 0]),
                                          dtype="int8x16"), dtype="int32x4"),
                        B.vload([1, 0, 0], "int8x16"),
                        T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4")], [1, 1, 1, 1]),
                                      dtype="int8x16"), dtype="int32x4"),
                    B.vload([2, 0, 0], "int8x16"),
                    T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4")], [2, 2, 2, 2]),
                                  dtype="int8x16"), dtype="int32x4"),
                B.vload([3, 0, 0], "int8x16"),
                T.reinterpret(T.Shuffle([T.reinterpret(A.vload([0], "int8x16"), dtype="int32x4")], [3, 3, 3, 3]),
                              dtype="int8x16"), dtype="int32x4")

    @T.prim_func(s_tir=True)
    def desc_mmla(a: T.handle, b: T.handle, c: T.handle) -> None:
        sa = T.int32()
        A = T.match_buffer(a, (2, 8), "int8", offset_factor=1, align=1, strides=[sa, 1])
        B = T.match_buffer(b, (2, 8), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (2, 2), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:2, 0:2], A[0:2, 0:8], B[0:2, 0:8])
            T.writes(C[0:2, 0:2])
            for i, j, k in T.grid(2, 2, 8):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", B[vj, vk])

    @T.prim_func(s_tir=True)
    def smmla(a: T.handle, b: T.handle, c: T.handle) -> None:
        sa = T.int32()
        A = T.match_buffer(a, (2, 8), "int8", offset_factor=1, align=1, strides=[sa, 1])
        B = T.match_buffer(b, (2, 8), "int8", offset_factor=1, align=1)
        C = T.match_buffer(c, (2, 2), "int32", offset_factor=1, align=1)
        with T.sblock("root"):
            T.reads(C[0:2, 0:2], A[0:2, 0:8], B[0:2, 0:8])
            T.writes(C[0:2, 0:2])
            # smmla(acc, a, b)[2i + j] = acc[2i + j] + sum_k a[8i + k] b[8j + k]
            C[0, T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.smmla.v4i32.v16i8"),
                C.vload([0, 0], "int32x4"),
                T.Shuffle([A.vload([0, 0], "int8x8"), A.vload([1, 0], "int8x8")], list(range(16))),
                B.vload([0, 0], "int8x16"), dtype="int32x4")

    s_tir.TensorIntrin.register(SDOT, desc, sdot)
    s_tir.TensorIntrin.register(NEON, desc, neon)
    s_tir.TensorIntrin.register(SDOT16, desc16, sdot16)
    s_tir.TensorIntrin.register(SMMLA, desc_mmla, smmla)
    return {"sdot": SDOT, "neon": NEON, "sdot16": SDOT16, "smmla": SMMLA}
