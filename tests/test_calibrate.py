"""Calibration: observers, calibrate() over batches, --calib files, data-free ranges."""
from __future__ import annotations

import numpy as np
import pytest

import edgeq.calibration.calibrate as cal
from edgeq.calibration.calibrate import activation_names, calibrate, load_calibration_file
from edgeq.calibration.datafree import DATA_FREE_NOTICE, data_free_ranges
from edgeq.errors import EdgeqError
from edgeq.ir import Graph, Node, Tensor
from edgeq.calibration.observers import Histogram, MinMax, mse_range, percentile_range

RNG = np.random.default_rng(0)


def conv_relu_graph(two_inputs: bool = False) -> Graph:
    g = Graph("c")
    g.add_tensor(Tensor("x", (1, 2, 6, 6), "float32"))
    g.inputs = ["x"]
    g.add_const("w", RNG.standard_normal((3, 2, 3, 3)).astype(np.float32))
    g.add_const("b", np.array([0.5, -0.5, 0.0], np.float32))
    g.nodes.append(Node("Conv", "conv", ["x", "w", "b"], ["c"],
                        dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
                             act_min=0.0, act_max=float("inf"))))
    g.add_tensor(Tensor("c", (1, 3, 6, 6), "float32"))
    last = "c"
    if two_inputs:
        g.add_tensor(Tensor("z", (1, 3, 6, 6), "float32"))
        g.inputs.append("z")
        g.nodes.append(Node("Add", "add", ["c", "z"], ["s"], {}))
        g.add_tensor(Tensor("s", (1, 3, 6, 6), "float32"))
        last = "s"
    g.nodes.append(Node("MaxPool", "pool", [last], ["y"],
                        dict(kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1])))
    g.add_tensor(Tensor("y", (1, 3, 3, 3), "float32"))
    g.outputs = ["y"]
    return g


# ---- observers ---------------------------------------------------------------------------------

def heavy_tail() -> np.ndarray:
    x = RNG.standard_normal(200_000)
    x[:3] = [40.0, -35.0, 50.0]  # three outliers
    return x


def hist_of(x):
    m = MinMax()
    m.observe(x)
    h = Histogram(*m.range())
    h.observe(x)
    return m, h


def test_minmax_is_exact_and_percentile_mse_clip_outliers():
    x = heavy_tail()
    m, h = hist_of(x)
    assert m.range() == (-35.0, 50.0)
    lo, hi = percentile_range(h, 99.99)
    assert -6 < lo < -3 and 3 < hi < 6
    lo2, hi2 = mse_range(h)
    assert -35 < lo2 < -2 and 2 < hi2 < 50


def test_one_sided_tensors_keep_their_exact_side():
    x = np.abs(heavy_tail())
    _, h = hist_of(x)
    assert percentile_range(h)[0] == 0.0 or percentile_range(h)[0] == float(x.min())
    assert mse_range(h)[0] == float(x.min())


def test_mse_beats_minmax_on_its_own_objective():
    x = heavy_tail()
    m, h = hist_of(x)

    def err(lo, hi):
        lo, hi = min(lo, 0), max(hi, 0)
        s = (hi - lo) / 255
        q = np.clip(np.round((x - lo) / s), 0, 255)
        return np.mean((q * s + lo - x) ** 2)
    assert err(*mse_range(h)) < 0.7 * err(*m.range())
    assert err(*mse_range(h)) < 1.05 * err(*percentile_range(h))


# ---- calibrate() ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", cal.METHODS)
def test_calibrate_covers_every_activation(method):
    g = conv_relu_graph()
    x = RNG.standard_normal((40, 2, 6, 6)).astype(np.float32)
    r = calibrate(g, x, method=method, progress=False)
    assert set(r) == set(activation_names(g)) == {"x", "c", "y"}
    assert r["c"][0] >= 0.0  # fused ReLU: never negative
    for lo, hi in r.values():
        assert lo <= hi


def test_batching_does_not_change_ranges(monkeypatch):
    g = conv_relu_graph()
    x = RNG.standard_normal((50, 2, 6, 6)).astype(np.float32)
    whole = calibrate(g, x, method="percentile", progress=True)
    per_sample = 72 + 108 + 27  # floats of x, c, y for one sample
    monkeypatch.setattr(cal, "BATCH_BUDGET_FLOATS", 7 * per_sample)  # batches of 7 samples
    assert cal._batch_size(g) == 7
    assert calibrate(g, x, method="percentile", progress=False) == whole


def test_calibrate_dict_for_two_inputs_and_errors():
    g = conv_relu_graph(two_inputs=True)
    feeds = {"x": RNG.standard_normal((8, 2, 6, 6)), "z": RNG.standard_normal((8, 3, 6, 6))}
    assert set(calibrate(g, feeds, method="minmax", progress=False)) == {"x", "z", "c", "s", "y"}
    with pytest.raises(EdgeqError, match="2 inputs"):
        calibrate(g, feeds["x"], progress=False)
    with pytest.raises(EdgeqError, match="sample counts"):
        calibrate(g, {"x": feeds["x"], "z": feeds["z"][:3]}, progress=False)
    with pytest.raises(EdgeqError, match="unknown calibration method"):
        calibrate(g, feeds, method="kl", progress=False)


def test_percentile_option_moves_every_range_and_is_checked():
    """`percentile` replaces PERCENTILE: 100 is min/max, a higher one never narrows a range
    and widens the heavy-tailed ones; nonsense fails before any work."""
    g = conv_relu_graph()
    x = RNG.standard_normal((2000, 2, 6, 6)).astype(np.float32)
    x[:10, 0, 2, 2] = 40.0  # 10 of 144,000 values: 99.99 clips them (14 allowed), 99.999 keeps them
    default = calibrate(g, x, progress=False)
    wide = calibrate(g, x, percentile=99.999, progress=False)
    assert calibrate(g, x, percentile=100.0, progress=False) == calibrate(g, x, method="minmax", progress=False)
    assert calibrate(g, x, percentile=cal.PERCENTILE, progress=False) == default
    for name, (lo, hi) in default.items():
        assert wide[name][0] <= lo and wide[name][1] >= hi
    assert wide["x"][1] > default["x"][1]
    for bad in (50.0, 101.0, -1.0):
        with pytest.raises(EdgeqError, match="outside"):
            calibrate(g, x, percentile=bad, progress=False)
    with pytest.raises(EdgeqError, match="--calib-method percentile"):
        calibrate(g, x, method="mse", percentile=99.9, progress=False)


# ---- --calib files ---------------------------------------------------------------------------------

def test_load_npy_and_npz(tmp_path):
    g = conv_relu_graph()
    x = RNG.standard_normal((5, 2, 6, 6))
    np.save(tmp_path / "c.npy", x)
    feeds = load_calibration_file(tmp_path / "c.npy", g)
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (5, 2, 6, 6)
    np.save(tmp_path / "one.npy", x[0])  # a single sample without a batch axis is accepted
    assert load_calibration_file(tmp_path / "one.npy", g)["x"].shape == (1, 2, 6, 6)
    g2 = conv_relu_graph(two_inputs=True)
    np.savez(tmp_path / "c.npz", x=x, z=RNG.standard_normal((5, 3, 6, 6)))
    assert set(load_calibration_file(tmp_path / "c.npz", g2)) == {"x", "z"}


@pytest.mark.parametrize("case,match", [
    ("missing", "does not exist"),
    ("suffix", "neither .npy nor .npz"),
    ("garbage", "cannot read"),
    ("shape", r"has shape \(5, 3, 6, 6\)"),
    ("int", "dtype int64"),
    ("nan", "NaN"),
    ("npy_for_two", "holds one array but the model has 2 inputs"),
    ("npz_names", "name the .npz arrays"),
    ("npz_counts", "different sample counts"),
])
def test_calibration_file_errors(tmp_path, case, match):
    g, g2 = conv_relu_graph(), conv_relu_graph(two_inputs=True)
    p = tmp_path / "c.npy"
    graph = g
    if case == "suffix":
        p = tmp_path / "c.txt"
        p.write_text("1 2 3")
    elif case == "garbage":
        p.write_bytes(b"not numpy")
    elif case == "shape":
        np.save(p, RNG.standard_normal((5, 3, 6, 6)))
    elif case == "int":
        np.save(p, np.zeros((5, 2, 6, 6), np.int64))
    elif case == "nan":
        np.save(p, np.full((5, 2, 6, 6), np.nan))
    elif case == "npy_for_two":
        np.save(p, RNG.standard_normal((5, 2, 6, 6)))
        graph = g2
    elif case in ("npz_names", "npz_counts"):
        p = tmp_path / "c.npz"
        z = RNG.standard_normal((4 if case == "npz_counts" else 5, 3, 6, 6))
        np.savez(p, x=RNG.standard_normal((5, 2, 6, 6)), **({"zz": z} if case == "npz_names" else {"z": z}))
        graph = g2
    with pytest.raises(EdgeqError, match=match) as e:
        load_calibration_file(p, graph)
    assert e.value.fix  # every error says how to fix it


# ---- data-free -----------------------------------------------------------------------------------

def test_data_free_uses_bn_stats_through_the_fused_relu():
    g = conv_relu_graph()
    g.meta["bn_stats"] = {"c": {"gamma": np.array([1.0, 2.0, 0.5]), "beta": np.array([0.0, 1.0, -3.0]),
                                "mean": np.zeros(3), "var": np.ones(3), "eps": 1e-5}}
    r = data_free_ranges(g)
    from edgeq.calibration.datafree import K_STD
    assert r["c"] == (0.0, 1.0 + K_STD * 2.0)  # lo clamped by the fused ReLU
    assert r["y"] == r["c"]                     # MaxPool maps the BN range exactly
    assert r["x"][0] < -2 and r["x"][1] > 2     # synthetic N(0, 1) input
    assert "data-free" in DATA_FREE_NOTICE and "\n" not in DATA_FREE_NOTICE


def test_data_free_without_bn_stats_uses_the_synthetic_batch():
    g = conv_relu_graph()
    r = data_free_ranges(g)
    assert set(r) == {"x", "c", "y"} and r["c"][1] > 0
