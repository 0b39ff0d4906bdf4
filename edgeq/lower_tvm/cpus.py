"""The ARM application CPUs the TVM lowering schedules for, by name (`cpu` argument).

Each entry says which int8 dot-product instructions the core has, so a kernel picks its
inner product: `sdot` (Armv8.2 dotprod: 4 int8 products summed into each int32 lane),
`smmla` (Armv8.6 i8mm: a 2x8 by 8x2 int8 tile into a 2x2 int32 tile) or the NEON
fallback (smull + pairwise adds, every Armv8-A core). `qemu_cpu` is the `-cpu` model of
qemu-aarch64 that has the same features (for tests and benchmarks under emulation).
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeq.errors import EdgeqError


@dataclass(frozen=True)
class Cpu:
    name: str
    mcpu: str            # LLVM's -mcpu (scheduling model and features)
    dotprod: bool
    i8mm: bool
    qemu_cpu: str
    gcc_flag: str        # aarch64-linux-gnu-gcc's -mcpu/-march for the C around the kernels

    def target(self) -> dict:
        """TVM 0.27 target dict (option strings are rejected there)."""
        mattr = ["+neon"] + (["+dotprod"] if self.dotprod else []) + (["+i8mm"] if self.i8mm else [])
        return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": self.mcpu, "mattr": mattr}

    @property
    def inner_product(self) -> str:
        return "smmla" if self.i8mm else "sdot" if self.dotprod else "neon"


CPUS = {c.name: c for c in [
    Cpu("cortex-a53", "cortex-a53", False, False, "cortex-a53", "-mcpu=cortex-a53"),
    Cpu("cortex-a55", "cortex-a55", True, False, "cortex-a76", "-mcpu=cortex-a55"),
    Cpu("cortex-a76", "cortex-a76", True, False, "cortex-a76", "-mcpu=cortex-a76"),
    Cpu("cortex-a78", "cortex-a78", True, False, "cortex-a76", "-mcpu=cortex-a78"),
    Cpu("cortex-x1", "cortex-x1", True, False, "cortex-a76", "-mcpu=cortex-x1"),
    Cpu("cortex-x3", "cortex-x3", True, True, "max", "-mcpu=cortex-x3"),
    Cpu("neoverse-n2", "neoverse-n2", True, True, "max", "-mcpu=neoverse-n2"),
    # Any Armv8.2-A core with dotprod, on LLVM's generic model: "max" without i8mm (the
    # sdot schedules on the same emulated CPU, to compare with smmla)
    Cpu("armv8.2-a", "generic", True, False, "max", "-march=armv8.2-a+dotprod"),
    # Any Armv8.6-A core: dotprod and i8mm on LLVM's generic scheduling model.
    Cpu("max", "generic", True, True, "max", "-march=armv8.6-a"),
]}


def get_cpu(name: str) -> Cpu:
    if name not in CPUS:
        raise EdgeqError(f"unknown ARM CPU {name!r}", f"use one of: {', '.join(CPUS)}")
    return CPUS[name]
