"""Constant arrays as C: `static const int8_t w_conv1[288] = { ... };`.

Constants are `static const`, so the linker places them in flash (.rodata), and 4-byte
aligned so kernels may read int8 weights a word at a time.
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
