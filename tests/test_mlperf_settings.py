"""benchmarks/mlperf_fidelity.py and mlperf_dev.py: which settings and folds each model gets."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mlperf_common import MODELS  # noqa: E402
from mlperf_dev import PHOTOS_IN_CALIB, fold_of  # noqa: E402
from mlperf_fidelity import edgeq_percentile  # noqa: E402


def test_the_percentile_is_picked_on_held_out_calibration_photos_only_for_the_disjoint_split():
    asked = []

    def pick(name):  # stands in for mlperf_dev.pick_percentile (which compiles 8-14 times)
        asked.append(name)
        return (99.999, {None: 20.0, 99.999: 21.5}) if name == "vww01" else (None, {None: 30.0, 99.999: 29.0})

    for name in MODELS:
        got, why = edgeq_percentile(name, "disjoint", None, False, pick)
        assert got == (99.999 if name == "vww01" else None) and "held out" in why
        assert edgeq_percentile(name, "shared", None, False, pick) == (None, "defaults")
        assert edgeq_percentile(name, "disjoint", None, True, pick) == (None, "defaults")
        assert edgeq_percentile(name, "shared", 99.9, False, pick) == (99.9, "given")
    assert asked == MODELS  # asked once per model, and only for the disjoint split
    assert "default 20.00 dB, 99.999 21.50 dB" in edgeq_percentile("vww01", "disjoint", None, False, pick)[1]


def test_dev_folds_hold_out_one_calibration_photo_each():
    from edgeq.models.mlperf_inputs import source_photos
    assert PHOTOS_IN_CALIB == len(source_photos()[0::2])  # the disjoint split's calibration photos
    f = fold_of("vww01", 128)
    assert list(f[:8]) == [0, 1, 2, 3, 4, 5, 6, 0]  # crop i comes from photo i mod 7
    assert sorted(set(f)) == list(range(PHOTOS_IN_CALIB))
    assert sorted(set(fold_of("kws01", 37))) == [0, 1, 2, 3]
    assert np.bincount(fold_of("ad01", 98)).min() >= 24


def test_crop_i_comes_from_photo_i_mod_n():
    """The fold rule above rests on this contract of edgeq.models.mlperf_inputs.photo_crops:
    swapping the second photo changes crops 1, 3, ... and leaves crops 0, 2, ... alone."""
    from edgeq.models.mlperf_inputs import photo_crops, source_photos
    a, b, c = source_photos()[:3]
    one = photo_crops(8, 4, 0, [a, b])
    two = photo_crops(8, 4, 0, [a, c])
    assert np.array_equal(one[0::2], two[0::2])
    assert not np.array_equal(one[1], two[1]) and not np.array_equal(one[3], two[3])
