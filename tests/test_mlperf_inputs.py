"""The benchmark inputs of the MLPerf image models (models/mlperf_inputs.py): crops of
natural photographs, calibration and evaluation never sharing a sample, and with the
default split never a photo."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")


def test_photo_crops_are_deterministic_and_come_from_the_named_photos():
    from edgeq.models.mlperf_inputs import photo_crops
    a = photo_crops(32, 6, seed=3, names=["chelsea", "coffee"])
    b = photo_crops(32, 6, seed=3, names=["chelsea", "coffee"])
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, photo_crops(32, 6, seed=4, names=["chelsea", "coffee"]))


def test_disjoint_split_keeps_calibration_and_evaluation_photos_apart(monkeypatch):
    """Every crop is tagged with its photo by giving each photo a constant colour."""
    from edgeq.models import mlperf_inputs as mi
    from skimage import data as skdata
    names = mi.source_photos()
    assert "colorwheel" not in names and "logo" not in names  # synthetic graphics are not natural photos
    for i, name in enumerate(names):
        monkeypatch.setattr(skdata, name, lambda i=i: np.full((64, 80, 3), i * 10, np.uint8))

    def tags(split, photos):
        x = mi._photo_split(32, 40, 1, split, photos)
        return set(np.unique(x[:, 0, 0, 0]).astype(int) // 10)
    cal, ev = tags("calib", "disjoint"), tags("eval", "disjoint")
    assert cal and ev and not cal & ev and cal | ev == set(range(len(names)))
    assert tags("calib", "shared") == tags("eval", "shared") == set(range(len(names)))
