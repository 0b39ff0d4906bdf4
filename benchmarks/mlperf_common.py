"""What the MLPerf Tiny benchmarks share: the models, which are classifiers, which take photos."""
MODELS = ["kws01", "ic01", "ad01", "vww01", "sww01", "ic01_large"]
CLASSIFIERS = {"kws01", "ic01", "vww01", "sww01", "ic01_large"}
IMAGE_MODELS = {"ic01", "ic01_large", "vww01"}
N_CALIB = 128  # calibration samples per model (the calib split)
