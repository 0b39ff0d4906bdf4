"""Oracle runners for .tflite models: LiteRT's reference kernels and TFLite Micro.

    outs = run_litert(model_bytes, {"x": x_int8})      # LiteRT, OpResolverType.BUILTIN_REF
    outs = run_tflm(model_bytes, {"x": x_int8})        # tflite-micro's Python interpreter
    arena = tflm_arena_bytes(model_bytes)              # TFLM's measured arena (bytes)

Feeds and outputs are edgeq-shaped int8 arrays with a leading batch axis of any size N
(each sample is run alone: the models have a static batch of 1). For models written by
edgeq.tflite_export the "edgeq_io" metadata says how each edgeq array maps to the TFLite
tensor (NCHW <-> NHWC), and the runners convert both ways; other .tflite files are fed
and read as they are, by position.

BUILTIN_REF is used (not LiteRT's default optimized kernels) because it is bit-identical
to TFLite Micro's reference kernels; the optimized kernels differ by a few LSB.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.export.tflite import read_io_metadata
from edgeq.export.tflite.layout import inverse

DEFAULT_TFLM_ARENA = 4 << 20


def _load(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    with open(model, "rb") as f:
        return f.read()


def _io_specs(model: bytes, n_in: int, n_out: int):
    meta = read_io_metadata(model)
    if meta is None:
        return [None] * n_in, [None] * n_out
    return meta["inputs"], meta["outputs"]


def _feed_list(specs, feeds: dict) -> list[np.ndarray]:
    arrays = []
    for i, spec in enumerate(specs):
        if spec is None:
            arr = list(feeds.values())[i]
        else:
            if spec["name"] not in feeds:
                raise EdgeqError(f"no input named {spec['name']!r} (feeds: {sorted(feeds)})")
            arr = feeds[spec["name"]]
        arrays.append(np.asarray(arr))
    return arrays


def _to_tflite(arr: np.ndarray, spec) -> np.ndarray:
    """One sample [1, ...] in edgeq layout -> TFLite layout."""
    if spec is None:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr.reshape(spec["shape"]).transpose(spec["perm"]))


def _from_tflite(arr: np.ndarray, spec) -> np.ndarray:
    if spec is None:
        return np.array(arr)
    return np.ascontiguousarray(np.asarray(arr).transpose(inverse(spec["perm"])))


def _batched(specs_in, specs_out, feeds, run_one, out_names) -> dict[str, np.ndarray]:
    arrays = _feed_list(specs_in, feeds)
    n = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
    results: list[list[np.ndarray]] = [[] for _ in specs_out]
    for i in range(n):
        sample = [_to_tflite(a[i:i + 1], s) for a, s in zip(arrays, specs_in)]
        for j, y in enumerate(run_one(sample)):
            results[j].append(_from_tflite(y, specs_out[j]))
    return {name: np.concatenate(r, axis=0) for name, r in zip(out_names, results)}


def _names(specs, details_names):
    return [s["name"] if s else d for s, d in zip(specs, details_names)]


def run_litert(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run with LiteRT's reference kernels (bit-identical to TFLite Micro)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    data = _load(model)
    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    specs_in, specs_out = _io_specs(data, len(ins), len(outs))

    def run_one(sample):
        for d, x in zip(ins, sample):
            it.set_tensor(d["index"], x.astype(d["dtype"], copy=False))
        it.invoke()
        return [it.get_tensor(d["index"]) for d in outs]

    return _batched(specs_in, specs_out, feeds, run_one, _names(specs_out, [d["name"] for d in outs]))


def _tflm(data: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime
    try:
        return runtime.Interpreter.from_bytes(data, arena_size=arena_size)
    except RuntimeError as e:
        raise EdgeqError(f"TFLite Micro could not load the model: {e}",
                         "check the op list against TFLM's kernels") from None


def run_tflm(model, feeds: dict[str, np.ndarray], arena_size: int = DEFAULT_TFLM_ARENA) -> dict[str, np.ndarray]:
    """Run with the tflite-micro Python interpreter (TFLM's reference kernels)."""
    data = _load(model)
    it = _tflm(data, arena_size)
    n_in = len(_subgraph_io(data)[0])
    n_out = len(_subgraph_io(data)[1])
    specs_in, specs_out = _io_specs(data, n_in, n_out)

    def run_one(sample):
        for i, x in enumerate(sample):
            it.set_input(x, i)
        it.invoke()
        return [np.array(it.get_output(j)) for j in range(n_out)]

    names = _names(specs_out, [f"output_{j}" for j in range(n_out)])
    return _batched(specs_in, specs_out, feeds, run_one, names)


def _subgraph_io(data: bytes):
    import tflite
    sg = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    return list(sg.InputsAsNumpy()), list(sg.OutputsAsNumpy())


@contextlib.contextmanager
def _capture_fd2():
    """Capture what C code writes to file descriptor 2 (TFLM's MicroPrintf)."""
    libc = ctypes.CDLL(None)
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        box: list[str] = []
        os.dup2(f.fileno(), 2)
        try:
            yield box
        finally:
            libc.fflush(None)
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            box.append(f.read().decode(errors="replace"))


def tflm_allocations(model, arena_size: int = DEFAULT_TFLM_ARENA) -> dict[str, int]:
    """TFLM's arena use for the model (host build, 64-bit pointers): total, head (the
    planned activations and scratch) and tail (persistent structs), in bytes, after one
    invoke on zero inputs. Read from print_allocations() (TFLM has no Python getter)."""
    data = _load(model)
    it = _tflm(data, arena_size)
    n_in = len(_subgraph_io(data)[0])
    for i in range(n_in):
        d = it.get_input_details(i)
        it.set_input(np.zeros(d["shape"], d["dtype"]), i)
    it.invoke()
    with _capture_fd2() as box:
        it.print_allocations()
    text = box[0]
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m:
            out[key] = int(m.group(1))
    if "total" not in out:
        raise RuntimeError(f"could not read TFLM's arena size from: {text[:300]!r}")
    return out


def tflm_arena_bytes(model, arena_size: int = DEFAULT_TFLM_ARENA) -> int:
    return tflm_allocations(model, arena_size)["total"]
