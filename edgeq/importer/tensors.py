"""Every tensor a model file carries is checked before numpy sees it, and external data is
read by edgeq itself.

A tensor's dims and dtype promise a number of bytes; a malformed file promises more or
fewer than it holds, or a terabyte. `check_tensor` compares the promise with what is
stored (raw bytes or typed values) and with MAX_ELEMENTS before anything is allocated,
so `to_array` never fails and never allocates more than the file holds.

External data is a path the model file names. A hostile file may name /etc/passwd,
../../secret, a symlink out of the folder, /dev/zero or a FIFO (a read that never
ends). `load_external_data` reads only a regular file inside the model's folder (its real
path, symlinks resolved, lies under the folder's real path; absolute paths and '..'
parts are refused outright), at an offset and length that lie inside the file and add
up to exactly the bytes the tensor declares, all checked before the first byte is read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgeq.errors import EdgeqError, shown

# One tensor at most 2**24 elements (64 MB of float32): far above any edge model (the
# largest MLPerf Tiny weight has 2**17, ImageNet MobileNetV2's 2**20), far below what
# would take a machine's memory. Anything larger is a corrupt or hostile size.
MAX_ELEMENTS = 1 << 24

NUMPY_OF: dict[int, np.dtype] = {
    t: np.dtype(d) for t, d in (
        (TensorProto.FLOAT, np.float32), (TensorProto.DOUBLE, np.float64), (TensorProto.FLOAT16, np.float16),
        (TensorProto.INT8, np.int8), (TensorProto.UINT8, np.uint8), (TensorProto.INT16, np.int16),
        (TensorProto.UINT16, np.uint16), (TensorProto.INT32, np.int32), (TensorProto.UINT32, np.uint32),
        (TensorProto.INT64, np.int64), (TensorProto.UINT64, np.uint64), (TensorProto.BOOL, np.bool_))}

# Where ONNX stores each type's values when raw_data is not used (onnx.proto).
_TYPED_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
                TensorProto.INT64: "int64_data", TensorProto.UINT32: "uint64_data",
                TensorProto.UINT64: "uint64_data"}


def dtype_name(elem: int) -> str:
    try:
        return TensorProto.DataType.Name(elem)
    except ValueError:
        return f"unknown type {elem}"


def element_count(dims, what: str) -> int:
    """The product of declared dims (Python ints: no overflow), refused when out of range."""
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise EdgeqError(f"{what} has negative dims {dims}", "re-export the model; dims are sizes (>= 0)")
    n = 1
    for d in dims:
        n *= d
    if n > MAX_ELEMENTS:
        raise EdgeqError(f"{what} declares {n:,} elements (dims {dims}), above edgeq's limit of "
                         f"{MAX_ELEMENTS:,} per tensor", "edge models are far smaller: check the file is "
                         "not corrupt and the dims are right")
    return n


def check_tensor(t: TensorProto, what: str) -> None:
    """Refuse a tensor whose dtype edgeq cannot read or whose stored values do not match
    its dims (raw_data length, or the count of typed values)."""
    what = f"{what} '{shown(t.name)}'" if t.name else what
    if t.data_type not in NUMPY_OF:
        raise EdgeqError(f"{what} has type {dtype_name(t.data_type)}; edgeq reads numeric tensors only",
                         "export the weights as float32 (integer tensors for shapes and indices)")
    n = element_count(t.dims, what)
    if t.data_location == TensorProto.EXTERNAL:
        raise EdgeqError(f"{what}: external data was not loaded", "give the model as a file path")
    itemsize = NUMPY_OF[t.data_type].itemsize
    if t.HasField("raw_data"):
        if len(t.raw_data) != n * itemsize:
            raise EdgeqError(f"{what} holds {len(t.raw_data)} bytes but its dims {list(t.dims)} and type "
                             f"{dtype_name(t.data_type)} need {n * itemsize}",
                             "the file is truncated or corrupt: export the model again")
        return
    field = _TYPED_FIELD.get(t.data_type, "int32_data")
    have = len(getattr(t, field))
    if have != n:
        raise EdgeqError(f"{what} holds {have} values but its dims {list(t.dims)} need {n}",
                         "the file is truncated or corrupt: export the model again")


def to_array(t: TensorProto, what: str) -> np.ndarray:
    check_tensor(t, what)
    return numpy_helper.to_array(t)


# ---- every tensor in a model ---------------------------------------------------------------

def _graph_tensors(g: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from g.initializer
    for sp in g.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in g.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[TensorProto]:
    for a in node.attribute:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        if a.HasField("sparse_tensor"):
            yield a.sparse_tensor.values
            yield a.sparse_tensor.indices
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            yield from _graph_tensors(sub)


def all_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for f in model.functions:
        for node in f.node:
            yield from _node_tensors(node)


# ---- external data -------------------------------------------------------------------------

def load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Replace every external reference by the bytes it names (checked first, see above)."""
    root = Path(os.path.realpath(folder))
    for t in all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        what = f"tensor '{shown(t.name)}'"
        if t.data_type not in NUMPY_OF:
            raise EdgeqError(f"{what} has type {dtype_name(t.data_type)}; edgeq reads numeric tensors only",
                             "export the weights as float32")
        need = element_count(t.dims, what) * NUMPY_OF[t.data_type].itemsize
        t.raw_data = _read_external(t, root, need, what)
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT


def _entries(t: TensorProto, what: str) -> tuple[str, int, int | None]:
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    try:
        offset = int(info.get("offset", "0") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise EdgeqError(f"{what}: external data offset/length {info.get('offset')!r}/{info.get('length')!r} "
                         "are not numbers", "the file is corrupt: export the model again") from None
    if offset < 0 or (length is not None and length < 0):
        raise EdgeqError(f"{what}: negative external data offset/length ({offset}, {length})",
                         "the file is corrupt: export the model again")
    return location, offset, length


def _read_external(t: TensorProto, root: Path, need: int, what: str) -> bytes:
    location, offset, length = _entries(t, what)
    path = _inside(location, root, what)
    try:
        st = os.stat(path)
    except OSError:
        raise EdgeqError(f"{what}: external data file {shown(location)} not found next to the model",
                         "keep the .onnx file next to its external data file(s)") from None
    if not stat.S_ISREG(st.st_mode):
        raise EdgeqError(f"{what}: external data {shown(location)} is not a regular file",
                         "keep the weights in a file next to the .onnx file")
    if length is None:
        length = st.st_size - offset
    if length != need:
        raise EdgeqError(f"{what}: external data holds {length} bytes but the tensor's dims {list(t.dims)} need "
                         f"{need}", "the files do not belong together: export the model again")
    if offset + length > st.st_size:
        raise EdgeqError(f"{what}: external data {shown(location)} ends at byte {offset + length}, past the "
                         f"file's {st.st_size} bytes", "the data file is truncated: copy it again")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise EdgeqError(f"{what}: external data {shown(location)} changed while being read",
                         "copy the model again")
    return data


def _inside(location: str, root: Path, what: str) -> Path:
    """The data file's real path, refused unless it is inside the model's folder."""
    refused = EdgeqError(f"{what}: external data path {shown(location)} points outside the model's folder; "
                         "edgeq reads weights only from files inside it",
                         "keep the weight file in the model's folder and name it by a relative path")
    if not location or "\x00" in location:
        raise EdgeqError(f"{what}: external data has no usable file name ({shown(location)})",
                         "the file is corrupt: export the model again")
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() \
            or PureWindowsPath(location).drive or ".." in PurePosixPath(location.replace("\\", "/")).parts:
        raise refused
    path = Path(os.path.realpath(root / location))
    if path != root and root not in path.parents:
        raise refused
    return path
