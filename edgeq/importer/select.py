"""Converters for ONNX ops that pick entries of an activation at positions known at compile
time: Slice, Split, Gather (constant indices), Pad in reflect / edge / wrap mode and Resize
in nearest mode. Each becomes one canonical `Gather` per axis it changes (the indices
along that axis, computed here with the ONNX operator's own rule), so the quantizer, the
integer reference, the C runtime and the TFLite export each need one kernel for all of
them: a copy. (Pad in constant mode stays a Pad; Resize in linear mode, which mixes
entries, becomes ResizeBilinear.)

Axis 0 is the batch (docs/float_graph.md): selecting along it is refused, except the
identity.
"""
from __future__ import annotations

import numpy as np

from edgeq.importer.fold import onnx_slice
from edgeq.importer.converters import _fail, axis
from edgeq.ops import implements
from edgeq.ops.shapes import source_coords


def is_identity(m, x: str, picks: dict[int, list[int]]) -> bool:
    shape = m.shape(x)
    return all([int(i) for i in idx] == list(range(shape[a])) for a, idx in picks.items())


def gather_axes(m, node, x: str, picks: dict[int, list[int]], out: str, name: str | None = None) -> str:
    """Emit a chain of Gathers, one per axis whose indices are not the identity, ending in
    `out` (an Identity when none is needed). picks: axis -> indices along it. `name`: the
    last node's (default: the ONNX node's)."""
    shape = m.shape(x)
    steps = [(a, [int(i) for i in idx]) for a, idx in sorted(picks.items())
             if [int(i) for i in idx] != list(range(shape[a]))]
    for a, idx in steps:
        if a == 0:
            _fail(node, "it selects along axis 0, the batch axis", "keep axis 0 the batch (size 1)")
        if not idx:
            _fail(node, f"it selects no element along axis {a} (an empty tensor)")
    if not steps:
        return m.emit("Identity", [m.ref(x)], out, {}, name or node.name)
    cur = m.ref(x)
    for k, (a, idx) in enumerate(steps):
        last = k == len(steps) - 1
        dst = out if last else m.temp(f"{out}/axis{a}")
        cur = m.emit("Gather", [cur], dst, {"axis": a, "indices": idx},
                     (name or node.name) if last else f"{node.name}/axis{a}")
    return cur


def _ints(m, node, name: str, what: str) -> list[int]:
    return [int(v) for v in np.asarray(m.need_const(name, what, node)).reshape(-1)]


@implements("import", "Slice", emits=("Gather", "Identity"))
def slice_(m, node, ins, attrs):
    shape = m.shape(ins[0])
    r = len(shape)
    starts, ends = _ints(m, node, ins[1], "starts"), _ints(m, node, ins[2], "ends")
    axes = _ints(m, node, ins[3], "axes") if len(ins) > 3 and ins[3] else list(range(len(starts)))
    steps = _ints(m, node, ins[4], "steps") if len(ins) > 4 and ins[4] else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        _fail(node, f"starts, ends, axes and steps have {len(starts)}, {len(ends)}, {len(axes)}, {len(steps)} values")
    if 0 in steps:
        _fail(node, "a step is 0")
    picks: dict[int, list[int]] = {}
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = axis(node, a, r, "axes")
        if a in picks:
            _fail(node, f"axis {a} is sliced twice")
        picks[a] = list(range(shape[a]))[onnx_slice(shape[a], s, e, st)]
    gather_axes(m, node, ins[0], picks, node.output[0])


@implements("import", "Split", emits=("Gather", "Identity"))
def split(m, node, ins, attrs):
    shape = m.shape(ins[0])
    a = axis(node, attrs.get("axis", 0), len(shape))
    n, parts = shape[a], len(node.output)
    if len(ins) > 1 and ins[1]:
        sizes = _ints(m, node, ins[1], "split")
    elif "split" in attrs:
        sizes = [int(v) for v in attrs["split"]]
    else:  # equal parts; opset 18's num_outputs lets the last one be smaller
        chunk = -(-n // parts)
        sizes = [min(chunk, n - k * chunk) for k in range(parts)]
    if len(sizes) != parts or sum(sizes) != n or min(sizes) < 0:
        _fail(node, f"split sizes {sizes} do not cut {n} elements of axis {a} into {parts} outputs")
    begin = 0
    for out, size in zip(node.output, sizes):
        if out:
            gather_axes(m, node, ins[0], {a: list(range(begin, begin + size))}, out)
        begin += size


@implements("import", "Gather", emits=("Gather", "Reshape", "Identity"))
def gather(m, node, ins, attrs):
    if m.is_const(ins[0]) or not m.is_const(ins[1]):
        _fail(node, "only a Gather of an activation at constant indices is supported",
              "index activations with constant indices only")
    shape = m.shape(ins[0])
    a = axis(node, attrs.get("axis", 0), len(shape))
    idx = np.asarray(m.value(ins[1])).astype(np.int64)
    n = shape[a]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        _fail(node, f"indices outside [-{n}, {n}) along axis {a}")
    flat = [int(i) % n for i in idx.reshape(-1)]
    out_shape = list(shape[:a]) + list(idx.shape) + list(shape[a + 1:])
    if idx.ndim == 1:
        gather_axes(m, node, ins[0], {a: flat}, node.output[0])
        return
    mid = gather_axes(m, node, ins[0], {a: flat}, m.temp(f"{node.output[0]}/flat"))
    m.emit("Reshape", [mid], node.output[0], {"shape": out_shape}, node.name + "/shape")


def pad_indices(n: int, before: int, after: int, mode: str) -> list[int]:
    """Where each element of a padded axis comes from, for ONNX Pad's non-constant modes
    (a negative pad crops)."""
    js = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(js, 0, n - 1).tolist()
    if mode == "wrap":
        return np.mod(js, n).tolist()
    # reflect: mirror about the first and last element, which are not repeated
    return np.where(js < 0, -js, np.where(js >= n, 2 * (n - 1) - js, js)).tolist()


def pad_by_gather(m, node, x: str, pads: list[int], mode: str) -> None:
    """Pad in reflect / edge / wrap mode (pads: all begins, then all ends)."""
    shape = m.shape(x)
    r = len(shape)
    if mode not in ("reflect", "edge", "wrap"):
        _fail(node, f"mode={mode!r} is not an ONNX Pad mode")
    for a in range(r):
        if shape[a] + pads[a] + pads[a + r] < 1:
            _fail(node, f"pads {pads} leave nothing of axis {a}")
        if mode == "reflect" and max(pads[a], pads[a + r]) >= shape[a] and (pads[a] > 0 or pads[a + r] > 0):
            _fail(node, f"reflect padding of {max(pads[a], pads[a + r])} along axis {a} needs more than "
                        f"{shape[a]} elements", "pad by less than the axis length")
    picks = {a: pad_indices(shape[a], pads[a], pads[a + r], mode) for a in range(r)}
    gather_axes(m, node, x, picks, node.output[0])


@implements("import", "Pad", emits=("Pad", "Gather", "Identity"))
def pad(m, node, ins, attrs):
    mode = attrs.get("mode", "constant")
    r = len(m.shape(ins[0]))
    if len(ins) > 1 and ins[1]:
        p = [int(v) for v in np.asarray(m.need_const(ins[1], "pads", node)).reshape(-1)]
    else:
        p = [int(v) for v in attrs.get("pads", [0] * 2 * r)]
    value = 0.0
    if len(ins) > 2 and ins[2]:
        value = float(np.asarray(m.need_const(ins[2], "the pad value", node)).reshape(-1)[0])
    if len(ins) > 3 and ins[3]:  # opset 18 axes: pads are given only for these axes
        axes = [axis(node, a, r, "axes") for a in np.asarray(m.need_const(ins[3], "axes", node)).reshape(-1)]
        if len(p) != 2 * len(axes):
            _fail(node, f"{len(p)} pads for {len(axes)} axes")
        full = [0] * 2 * r
        for k, a in enumerate(axes):
            full[a], full[a + r] = p[k], p[k + len(axes)]
        p = full
    if len(p) != 2 * r:
        _fail(node, f"{len(p)} pads for a rank-{r} tensor (it needs {2 * r})")
    if mode != "constant":
        pad_by_gather(m, node, ins[0], p, mode)
        return
    if any(v < 0 for v in p):
        _fail(node, f"negative pads {p} (cropping) are not supported")
    m.emit("Pad", [m.ref(ins[0])], node.output[0], {"pads": p, "value": value}, node.name)


# ---- Resize (nearest) ----------------------------------------------------------------------

_F = np.float32


def _nearest(coords: np.ndarray, rule: str, in_len: int) -> list[int]:
    if rule == "floor":
        i = np.floor(coords)
    elif rule == "ceil":
        i = np.ceil(coords)
    else:  # round_prefer_floor / round_prefer_ceil: ties go down / up
        frac = coords - np.floor(coords)
        tie = np.floor(coords) + (rule == "round_prefer_ceil")
        i = np.where(frac == _F(0.5), tie, np.floor(coords + _F(0.5)))
    return np.clip(i, 0, in_len - 1).astype(np.int64).tolist()


COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def resize_geometry(m, node, ins, attrs) -> tuple[list[int], list]:
    """(output shape, per-axis scale) of a Resize: from `sizes` (scale = out / in, in float32
    as onnxruntime) or from `scales` (out = floor(in * scale))."""
    shape = m.shape(ins[0])
    r = len(shape)
    axes = [axis(node, a, r, "axes") for a in attrs.get("axes", range(r))]
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        _fail(node, f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r} is not supported",
              "give explicit sizes or scales")
    out, scales = list(shape), [_F(1.0)] * r
    sizes = m.value(ins[3]) if len(ins) > 3 and ins[3] else None
    given = m.value(ins[2]) if len(ins) > 2 and ins[2] else None
    if sizes is not None and np.size(sizes):
        sizes = _ints(m, node, ins[3], "sizes")
        if len(sizes) != len(axes):
            _fail(node, f"{len(sizes)} sizes for {len(axes)} axes")
        for a, n in zip(axes, sizes):
            out[a], scales[a] = n, _F(n) / _F(shape[a])
    elif given is not None and np.size(given):
        given = np.asarray(given, _F).reshape(-1)
        if len(given) != len(axes) or np.any(given <= 0):
            _fail(node, f"scales {given.tolist()} for {len(axes)} axes (each must be positive)")
        for a, s in zip(axes, given):
            out[a], scales[a] = int(np.floor(_F(shape[a]) * s)), s
    else:
        for name, k in (("scales", 2), ("sizes", 3)):
            if len(ins) > k and ins[k]:
                m.need_const(ins[k], name, node)
        _fail(node, "neither scales nor sizes is given")
    return out, scales


LINEAR_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _resize_linear(m, node, ins, attrs) -> None:
    """mode=linear over H and W of an [N, C, H, W] tensor -> ResizeBilinear."""
    shape = m.shape(ins[0])
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    if coord not in LINEAR_MODES:
        _fail(node, f"linear Resize with coordinate_transformation_mode={coord!r} is not supported",
              f"use one of {', '.join(LINEAR_MODES)}")
    out, scales = resize_geometry(m, node, ins, attrs)
    if len(shape) != 4 or out[:2] != list(shape[:2]):
        _fail(node, f"linear Resize of {list(shape)} to {out} is not supported (only H and W of [N, C, H, W])",
              "resize only the spatial axes of a 4-D tensor")
    if attrs.get("antialias", 0) and (out[2] < shape[2] or out[3] < shape[3]):
        _fail(node, "antialiased linear downsampling is not supported", "export with antialias=False")
    m.emit("ResizeBilinear", [m.ref(ins[0])], node.output[0],
           {"sizes": out[2:], "scales": [float(scales[2]), float(scales[3])],
            "coordinate_transformation_mode": coord}, node.name)


@implements("import", "Resize", emits=("Gather", "ResizeBilinear", "Identity"))
def resize(m, node, ins, attrs):
    mode = attrs.get("mode", "nearest")
    if mode == "linear":
        _resize_linear(m, node, ins, attrs)
        return
    if mode != "nearest":
        _fail(node, f"mode={mode!r} is not supported (only nearest and linear)",
              "use nearest-neighbour or bilinear upsampling")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    rule = attrs.get("nearest_mode", "round_prefer_floor")
    if coord not in COORD_MODES or rule not in NEAREST_MODES:
        _fail(node, f"coordinate_transformation_mode={coord!r} / nearest_mode={rule!r} is not supported",
              f"use one of {', '.join(COORD_MODES)}")
    shape = m.shape(ins[0])
    out, scales = resize_geometry(m, node, ins, attrs)
    picks = {a: _nearest(source_coords(out[a], shape[a], scales[a], coord), rule, shape[a])
             for a in range(len(shape)) if out[a] != shape[a] or scales[a] != 1}
    gather_axes(m, node, ins[0], picks, node.output[0])
