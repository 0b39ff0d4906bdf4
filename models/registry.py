"""Where the committed Fashion-MNIST reference models live, and what they scored.

    from edgeq.models.registry import REFERENCE_MODELS, model_path, model_info
    model_path("dscnn")          # .../models/fmnist_dscnn.onnx
    model_info("dscnn")          # {"params": ..., "macs": ..., "float_test_accuracy": ..., ...}

The ONNX files are float models (Conv + BatchNormalization kept, opset 13, IR 8), input
"input" float32 [1, 1, 28, 28] = pixel / 255 (edgeq.models.fmnist.preprocess), output
"logits" float32 [1, 10]. model_info() reads fmnist_results.json, written by
`python -m edgeq.models.train` when it exports the files.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgeq.errors import EdgeqError

MODELS_DIR = Path(__file__).resolve().parent
NAMES = ("dscnn", "mobilenetv2", "resnet8")
REFERENCE_MODELS: dict[str, Path] = {n: MODELS_DIR / f"fmnist_{n}.onnx" for n in NAMES}
RESULTS_PATH = MODELS_DIR / "fmnist_results.json"


def model_path(name: str) -> Path:
    """Path of a committed reference model; EdgeqError if the name or the file is unknown."""
    if name not in REFERENCE_MODELS:
        raise EdgeqError(f"unknown reference model {name!r}", f"choose one of {', '.join(NAMES)}")
    path = REFERENCE_MODELS[name]
    if not path.is_file():
        raise EdgeqError(f"reference model file {path} is missing",
                         f"retrain it with `python -m edgeq.models.train --model {name}`")
    return path


def model_info(name: str) -> dict:
    """Training record of a reference model: params, macs, float_test_accuracy (10k), epochs, ..."""
    model_path(name)
    results = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
    if name not in results:
        raise EdgeqError(f"no training record for {name!r} in {RESULTS_PATH}",
                         f"retrain it with `python -m edgeq.models.train --model {name}`")
    return results[name]
