"""What the generator hands to the C around it: one `Kernel` per lowered node.

A kernel is a C function `void <symbol>(<args>)` in its own object file. Its arguments are
raw pointers, in this order of roles:

    input    the node's activation inputs, NHWC (see docs/arm64.md, "layout contract")
    const    arrays the generator made from the node's constants (pre-packed weights,
             folded biases, per-channel multipliers and shifts): the caller stores them
             as `static const` arrays and passes them as they are
    scratch  int8 work buffers (a padded input; smmla's whole-tile results), laid out
             back to back in one region of `scratch_bytes` at `scratch_offsets`
    output   the node's output, NHWC

The object depends only on the op's parameters (shapes, zero points, clamps, schedule,
CPU), never on weight values, so identical layers share one object (`symbol` is a hash
of those parameters) and the cache in edgeq.lower_tvm.objects serves every model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t"}


@dataclass
class Arg:
    name: str                      # C parameter name
    role: str                      # input | const | scratch | output
    dtype: str
    shape: tuple[int, ...]
    tensor: str | None = None      # the graph tensor (inputs and outputs)
    data: np.ndarray | None = None  # the array (consts)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def c_decl(self) -> str:
        const = "const " if self.role in ("input", "const") else ""
        return f"{const}{C_TYPES[self.dtype]} *{self.name}"


@dataclass
class Kernel:
    symbol: str
    obj: Path
    args: list[Arg]
    op: str
    notes: dict = field(default_factory=dict)   # schedule facts for reports

    @property
    def scratch_offsets(self) -> dict[str, int]:
        """Each scratch argument's offset in the kernel's scratch region (16-byte aligned:
        two arguments must never share bytes)."""
        out, end = {}, 0
        for a in self.args:
            if a.role == "scratch":
                out[a.name] = end
                end += -(-a.nbytes // 16) * 16
        return out

    @property
    def scratch_bytes(self) -> int:
        last = [a for a in self.args if a.role == "scratch"]
        return self.scratch_offsets[last[-1].name] + last[-1].nbytes if last else 0

    def prototype(self) -> str:
        return f"void {self.symbol}({', '.join(a.c_decl() for a in self.args)});"

    def consts(self) -> list[Arg]:
        return [a for a in self.args if a.role == "const"]
