"""Constant arrays as C: `static const int8_t w_conv1[288] = { ... };`.

Constants are `static const`, so the linker places them in flash (.rodata), and 4-byte
aligned so kernels may read int8 weights a word at a time. Weights of <= 4 bits are packed
two per byte first (`pack_s4`, the layout of eq_kernels.h's _s4 kernels).
"""
from __future__ import annotations

import numpy as np

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t"}
PER_LINE = {"int8": 24, "uint8": 24, "int16": 16, "int32": 8}


def c_type(dtype: str) -> str:
    if dtype not in C_TYPES:
        raise TypeError(f"no C array type for constants of dtype {dtype}")
    return C_TYPES[dtype]


def as_c_dtype(data: np.ndarray) -> np.ndarray:
    """int64 integer parameters (multipliers, shifts) narrowed to int32, range-checked."""
    a = np.asarray(data)
    if a.dtype == np.int64:
        if a.size and (a.min() < -2**31 or a.max() > 2**31 - 1):
            raise ValueError("an int64 constant does not fit int32")
        a = a.astype(np.int32)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a)


def format_values(flat: np.ndarray, per_line: int) -> str:
    values = [str(v) for v in flat.tolist()]
    rows = (", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line))
    return ",\n".join("    " + r for r in rows)


def const_array(ident: str, data: np.ndarray, comment: str = "", storage: str = "static const") -> str:
    a = as_c_dtype(data)
    flat = a.reshape(-1)
    n = max(flat.size, 1)
    body = format_values(flat, PER_LINE[a.dtype.name]) if flat.size else "    0"
    head = f"/* {comment} */\n" if comment else ""
    return (f"{head}{storage} {c_type(a.dtype.name)} {ident}[{n}] __attribute__((aligned(4))) = {{\n"
            f"{body}\n}};\n")


def pack_s4(q: np.ndarray) -> np.ndarray:
    """int4 weights [rows, ...] -> uint8 [rows, (K + 1) // 2], K = the values per row.

    Value i of a row goes to byte i // 2, low nibble when i is even, high nibble when odd;
    an odd K pads each row's last high nibble with 0 (eq_kernels.h). Example: the row
    (-1, 7, -8) -> (0x7F, 0x08)."""
    q = np.asarray(q)
    if q.size and (q.min() < -8 or q.max() > 7):
        raise ValueError("pack_s4: values outside the int4 range [-8, 7]")
    rows = q.reshape(q.shape[0], -1).astype(np.int64) & 0xF  # two's complement nibbles
    k = rows.shape[1]
    if k % 2:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], 1), np.int64)], axis=1)
    return (rows[:, 0::2] | (rows[:, 1::2] << 4)).astype(np.uint8)


def s4_bytes(shape) -> int:
    """Bytes of a packed int4 weight tensor of `shape` (rows along axis 0)."""
    rows = int(shape[0]) if len(shape) else 1
    k = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return rows * ((k + 1) // 2)
