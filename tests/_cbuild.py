"""Build runtime_c/ into a host shared library once per session and call its kernels from
Python with ctypes (tests only). The ctypes structs below mirror eq_kernels.h field for
field; every field is int32_t, so a struct is declared by its field names alone.

With EDGEQ_SANITIZE=1 the library is built with AddressSanitizer and UBSan, every report
fatal (`make sanitize`, tests/sanitize.py: the ASan runtime must be preloaded into Python)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parents[1] / "runtime_c"
INCLUDE = RUNTIME / "include"
SRC = RUNTIME / "src"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def sanitized() -> bool:
    return os.environ.get("EDGEQ_SANITIZE") == "1"


def cflags() -> list[str]:
    return CFLAGS + SANITIZE_FLAGS if sanitized() else CFLAGS

I32 = ctypes.c_int32
EQ_MAX_RANK, EQ_BCAST_RANK = 6, 4


def _struct(name: str, fields: list[str | tuple[str, int]]):
    spec = [(f, I32) if isinstance(f, str) else (f[0], I32 * f[1]) for f in fields]
    return type(name, (ctypes.Structure,), {"_fields_": spec})


ConvParams = _struct("eq_conv2d_params", [
    "batch", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom", "pad_right",
    "dilation_h", "dilation_w", "groups", "x_zp", "y_zp", "act_min", "act_max"])
FcParams = _struct("eq_fc_params", ["batch", "in_features", "out_features", "x_zp", "y_zp",
                                    "act_min", "act_max"])
AddParams = _struct("eq_add_params", [
    ("a_dims", 4), ("b_dims", 4), ("y_dims", 4), "a_zp", "b_zp", "y_zp", "left_shift",
    "a_mult", "a_shift", "b_mult", "b_shift", "y_mult", "y_shift", "act_min", "act_max"])
MulParams = _struct("eq_mul_params", [
    ("a_dims", 4), ("b_dims", 4), ("y_dims", 4), "a_zp", "b_zp", "y_zp", "y_mult", "y_shift",
    "act_min", "act_max"])
PreluParams = _struct("eq_prelu_params", ["batch", "channels", "inner", "neg_channels", "x_zp",
                                          "y_zp", "pos_mult", "pos_shift", "act_min", "act_max"])
PoolParams = _struct("eq_pool_params", [
    "batch", "channels", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom", "pad_right",
    "dilation_h", "dilation_w", "count_include_pad", "x_zp", "act_min", "act_max"])
SoftmaxParams = _struct("eq_softmax_params", ["outer", "depth", "inner", "input_mult",
                                              "input_left_shift", "diff_min"])
RequantParams = _struct("eq_requant_params", ["size", "x_zp", "y_zp", "mult", "shift"])
TransposeParams = _struct("eq_transpose_params", ["rank", ("in_dims", EQ_MAX_RANK),
                                                  ("perm", EQ_MAX_RANK)])
MatmulParams = _struct("eq_matmul_params", ["batch", "m", "k", "n", "a_batch_stride", "b_batch_stride",
                                            "a_zp", "b_zp", "y_zp", "y_mult", "y_shift", "act_min", "act_max"])
ResizeParams = _struct("eq_resize_params", ["batch", "channels", "in_h", "in_w", "out_h", "out_w"])
GatherParams = _struct("eq_gather_params", ["outer", "in_len", "out_len", "inner"])
PadParams = _struct("eq_pad_params", ["rank", ("in_dims", EQ_MAX_RANK), ("pad_begin", EQ_MAX_RANK),
                                      ("pad_end", EQ_MAX_RANK), "value"])


def make(cls, **kw):
    """A params struct from keyword values (lists fill array fields, padded with 0)."""
    s = cls()
    for k, v in kw.items():
        if isinstance(v, (list, tuple)):
            arr = getattr(s, k)
            for i, e in enumerate(v):
                arr[i] = int(e)
        else:
            setattr(s, k, int(v))
    return s


HARNESS = Path(__file__).resolve().parent / "c_harness"


def sources() -> list[Path]:
    """Runtime sources plus the test shims (exported copies of the inline primitives)."""
    return sorted(SRC.glob("*.c")) + sorted(HARNESS.glob("*.c"))


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """Compile every runtime_c source into one .so (cached by content hash in the temp dir)."""
    if shutil.which("gcc") is None:
        import pytest
        pytest.skip("host gcc is missing")
    files = sources() + sorted(INCLUDE.glob("*.h")) + sorted(SRC.glob("*.h"))
    files.append(Path(__file__))  # the flags live here
    flags = cflags()
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files) + " ".join(flags).encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"edgeq_rt_{digest}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp.so")
        subprocess.run(["gcc", *flags, f"-I{INCLUDE}", *map(str, sources()), "-o", str(tmp)],
                       check=True, capture_output=True, text=True, timeout=300)
        tmp.replace(out)
    return ctypes.CDLL(str(out))


def ptr(a: np.ndarray | None):
    """ctypes pointer to a contiguous array's data (None -> NULL)."""
    if a is None:
        return None
    assert a.flags.c_contiguous
    return ctypes.c_void_p(a.ctypes.data)


def call(name: str, *args) -> int:
    fn = getattr(library(), name)
    fn.restype = ctypes.c_int
    conv = [ctypes.byref(a) if isinstance(a, ctypes.Structure) else
            ptr(a) if isinstance(a, np.ndarray) or a is None else a for a in args]
    return fn(*conv)


def i8(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int8)


def i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)
