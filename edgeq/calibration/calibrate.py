"""Activation ranges for the quantizer: from calibration data, or data-free.

    ranges = calibrate(graph, samples, method="percentile")   # {tensor: (lo, hi)}
    ranges = data_free_ranges(graph)                           # no data at all (datafree.py)
    feeds = load_calibration_file("calib.npz", graph)          # for --calib

`calibrate` runs the float executor (edgeq.float_exec.run_float) over the samples in
batches and feeds every activation tensor (graph inputs and every node output) to an
observer (edgeq.observers): "minmax", "percentile" (99.99th) or "mse".

The default method, percentile (edgeq.options.DEFAULT_CALIB_METHOD), was chosen by measurement. Fashion-MNIST reference models,
int8 per-channel weights, calibrated on the first 512 training images, top-1 on the 10k
test set (float -> int8, difference in points):

    model        float    minmax          percentile      mse
    dscnn        90.43    90.41 (-0.02)   90.38 (-0.05)   90.40 (-0.03)
    mobilenetv2  90.07    89.92 (-0.15)   90.05 (-0.02)   89.97 (-0.10)
    resnet8      92.33    92.27 (-0.06)   92.36 (+0.03)   92.29 (-0.04)

Percentile has the smallest worst case (-0.05) and mean loss (-0.01); min/max loses most
on the deeper mobilenetv2, where a few extreme activations stretch scales. On the MLPerf
Tiny models (64-128 realistic inputs, output SQNR vs float) no method wins everywhere
(percentile best on kws01 and ic01, MSE on sww01 and ic01_large, min/max on vww01), so
they do not overturn the Fashion-MNIST choice. MSE is also the slowest (a search per
tensor); all three need well under 5 s for 512 images on these models.

The percentile itself is an option (`percentile=`, `--calib-percentile`; default
edgeq.options.DEFAULT_PERCENTILE), because no one value is best. Held out one calibration photo at a time (benchmarks/mlperf_dev.py), 99.999
raised the output SQNR of all three MLPerf Tiny image models (vww01 +2.0, ic01 +0.6,
ic01_large +1.8 dB: unseen scenes reach beyond the 99.99th percentile of the others) and
lowered ImageNet MobileNetV2's (-3.3 dB, 224x224, fifteen photos), while the audio
models, whose held-out windows overlap the calibration ones, lost too (kws01 -0.5, ad01
-2.7, sww01 -0.2 dB). docs/fidelity.md, sixth session.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.calibration.observers import Histogram, MinMax, mse_range, percentile_range
from edgeq.errors import EdgeqError, shown
from edgeq.ir import Graph
from edgeq.options import CALIB_METHODS as METHODS  # noqa: F401  (the values live in edgeq.options)
from edgeq.options import DEFAULT_CALIB_METHOD as DEFAULT_METHOD  # noqa: F401
from edgeq.options import DEFAULT_PERCENTILE as PERCENTILE  # noqa: F401
from edgeq.floatexec.executor import run_float
from edgeq.options import CalibrationOptions
from edgeq.progress import progress_bar
# Float activations a calibration batch may hold at once (all tensors of the batch).
BATCH_BUDGET_FLOATS = 64 * 1024 * 1024


def activation_names(graph: Graph) -> list[str]:
    """Graph inputs and every node output: the tensors that need (lo, hi)."""
    names = list(graph.inputs)
    for n in graph.nodes:
        names += [o for o in n.outputs if o and o not in names]
    return names


def _as_feeds(graph: Graph, samples) -> dict[str, np.ndarray]:
    if isinstance(samples, np.ndarray):
        if len(graph.inputs) != 1:
            raise EdgeqError(f"the model has {len(graph.inputs)} inputs but one calibration array was given",
                             f"give a dict (or .npz) with arrays named {', '.join(graph.inputs)}")
        samples = {graph.inputs[0]: samples}
    feeds = {k: np.asarray(v, dtype=np.float32) for k, v in samples.items()}
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise EdgeqError(f"calibration data lacks inputs {missing}",
                         f"give one array per input: {', '.join(graph.inputs)}")
    counts = {len(feeds[n]) for n in graph.inputs}
    if len(counts) != 1 or 0 in counts:
        raise EdgeqError(f"calibration arrays have sample counts {sorted(counts)}",
                         "give the same number (> 0) of samples for every input")
    return {n: feeds[n] for n in graph.inputs}


def _batch_size(graph: Graph) -> int:
    per_sample = sum(int(np.prod(graph.tensors[n].shape[1:], dtype=np.int64))
                     for n in activation_names(graph) if n in graph.tensors)
    return int(max(1, min(256, BATCH_BUDGET_FLOATS // max(per_sample, 1))))


def _passes(graph: Graph, feeds: dict[str, np.ndarray], names: list[str], progress: bool, label: str):
    """Yield {tensor: float array} for each batch of the samples (float executor)."""
    n = len(next(iter(feeds.values())))
    bs = _batch_size(graph)
    with progress_bar(label, n, progress) as step:
        for s in range(0, n, bs):
            yield run_float(graph, {k: v[s:s + bs] for k, v in feeds.items()}, outputs=names)
            step(min(bs, n - s))


def calibrate(graph: Graph, samples, method: str | None = None, progress: bool = True,
              percentile: float | None = None, options: CalibrationOptions | None = None
              ) -> dict[str, tuple[float, float]]:
    """{tensor name: (lo, hi)} for every activation (graph inputs included). method None is
    the default method; `percentile` (method "percentile" only) replaces the default
    percentile. `options`, already checked (CompileOptions.calibration), replaces both."""
    options = options if options is not None else CalibrationOptions(method, percentile)
    method = options.method
    feeds = _as_feeds(graph, samples)
    names = activation_names(graph)
    mm = {n: MinMax() for n in names}
    passes = 1 if method == "minmax" else 2
    for out in _passes(graph, feeds, names, progress, f"calibrating ({method}, pass 1/{passes})"):
        for n in names:
            mm[n].observe(np.asarray(out[n]))
    check_finite({n: mm[n].range() for n in names})
    if method == "minmax":
        return {n: mm[n].range() for n in names}
    hist = {n: Histogram(*mm[n].range()) for n in names}
    for out in _passes(graph, feeds, names, progress, f"calibrating ({method}, pass 2/2)"):
        for n in names:
            hist[n].observe(np.asarray(out[n]))
    p = options.upper_percentile
    pick = (lambda h: percentile_range(h, p)) if method == "percentile" else mse_range
    return {n: pick(hist[n]) for n in names}


def check_finite(ranges: dict[str, tuple[float, float]]) -> None:
    """An activation that reaches inf or NaN in float32 has no int8 scale: say which one."""
    for name, (lo, hi) in ranges.items():
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise EdgeqError(f"activation '{shown(name)}' reaches {lo} .. {hi} in float32 on the calibration inputs",
                             "the model overflows float32: check its weights (and the calibration data)")


# ---- --calib files ---------------------------------------------------------------------

def load_calibration_file(path, graph: Graph) -> dict[str, np.ndarray]:
    """.npy: N samples for a single-input model; .npz: one array per input name.
    Returns float32 arrays [N, ...] keyed by input name; any mismatch is an EdgeqError."""
    path = Path(path)
    if not path.is_file():
        raise EdgeqError(f"calibration file {path} does not exist", "give an existing .npy or .npz file")
    if path.suffix not in (".npy", ".npz"):
        raise EdgeqError(f"calibration file {path.name} is neither .npy nor .npz",
                         "save samples with numpy.save (one input) or numpy.savez (one array per input)")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise EdgeqError(f"cannot read calibration file {path}: {e}",
                         "save samples with numpy.save / numpy.savez") from None
    if isinstance(data, np.ndarray):
        if len(graph.inputs) != 1:
            raise EdgeqError(f"{path.name} holds one array but the model has {len(graph.inputs)} inputs "
                             f"({', '.join(graph.inputs)})",
                             "save an .npz with one array per input name")
        arrays = {graph.inputs[0]: data}
    else:
        arrays = {k: data[k] for k in data.files}
        unknown = sorted(set(arrays) - set(graph.inputs))
        missing = [n for n in graph.inputs if n not in arrays]
        if missing or unknown:
            raise EdgeqError(f"{path.name} has arrays {sorted(arrays)} but the model's inputs are "
                             f"{graph.inputs}", "name the .npz arrays exactly like the model's inputs")
    feeds = {name: _check_array(name, arrays[name], graph, path.name) for name in graph.inputs}
    counts = {n: len(v) for n, v in feeds.items()}
    if len(set(counts.values())) != 1:
        raise EdgeqError(f"{path.name}: inputs have different sample counts {counts}",
                         "give the same number of samples for every input")
    return feeds


def _check_array(name: str, x: np.ndarray, graph: Graph, fname: str) -> np.ndarray:
    want = tuple(graph.tensors[name].shape[1:])
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgeqError(f"{fname}: input {name!r} has dtype {x.dtype}, calibration needs real values",
                         "save float32 samples preprocessed exactly as for the float model")
    if tuple(x.shape) == want:  # one sample without its batch axis
        x = x[None]
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise EdgeqError(f"{fname}: input {name!r} has shape {tuple(x.shape)}, the model expects "
                         f"(N, {', '.join(map(str, want))})",
                         "stack the samples on a first (batch) axis in the model's input layout")
    if len(x) == 0:
        raise EdgeqError(f"{fname}: input {name!r} holds no samples", "give at least one sample")
    if not np.all(np.isfinite(x)):
        raise EdgeqError(f"{fname}: input {name!r} contains NaN or inf", "clean the calibration samples")
    return x.astype(np.float32)
