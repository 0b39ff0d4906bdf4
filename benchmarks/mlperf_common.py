"""What the MLPerf Tiny benchmarks share: the models, which are classifiers, which take photos."""
MODELS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]
CLASSIFIERS = {"kws01", "ic01", "vww01", "sww01", "ic01_large"}
IMAGE_MODELS = {"ic01", "ic01_large", "vww01"}
N_CALIB = 128  # calibration samples per model (the calib split)
# What mlperf_dev.pick_percentile chooses per model with the disjoint photo split (the
# default or 99.999; docs/fidelity.md). mlperf_fidelity.py re-runs the pick every time;
# tests/test_mlperf_claims.py uses this record in the default run and checks it in the slow set.
HELD_OUT_PICKS = {"kws01": None, "ic01": 99.999, "ad01": None, "vww01": 99.999, "sww01": None,
                  "ic01_large": 99.999}
