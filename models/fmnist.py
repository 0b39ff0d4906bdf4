"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (IDX files, gzip).

    images, labels = load_fmnist("test")     # uint8 [10000, 28, 28], int64 [10000]
    x = preprocess(images)                   # float32 [10000, 1, 28, 28] in [0, 1]

Preprocessing is the one thing every user of the reference models must repeat exactly, so
it is deliberately the simplest possible: pixel / 255, NCHW, no mean/std normalisation.
Why no normalisation: the input range is then exactly [0, 1], so an int8 input quantizer
gets scale 1/255 and zero point -128 and every uint8 pixel maps to one int8 code with no
rounding; the first Conv's BatchNormalization absorbs any shift and scale the network
wants. The reference models in this folder were trained on this preprocessing.

The data folder is /usr/share/datasets/fashion-mnist unless EDGEQ_FMNIST_DIR (or the
`root` argument) names another holding the same four files.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_FIX = ("install Debian's dataset-fashion-mnist (`sudo apt-get install dataset-fashion-mnist`, "
        "or `make setup`), or set EDGEQ_FMNIST_DIR to a folder holding the IDX .gz files")


def data_dir(root: str | Path | None = None) -> Path:
    """The folder the IDX files are read from (not checked for existence)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("EDGEQ_FMNIST_DIR")
    return Path(env) if env else DEFAULT_DIR


def available(root: str | Path | None = None) -> bool:
    """True when all four IDX files are present (tests use this to skip)."""
    d = data_dir(root)
    return all((d / f).is_file() for pair in _FILES.values() for f in pair)


def _read_idx(path: Path, want_ndim: int) -> np.ndarray:
    """Parse one gzip'd IDX file: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, data."""
    if not path.is_file():
        raise EdgeqError(f"Fashion-MNIST file {path} is missing", _FIX)
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != want_ndim:
        raise EdgeqError(f"{path} is not a uint8 IDX file with {want_ndim} dimensions "
                         f"(header {raw[:4].hex()})", _FIX)
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise EdgeqError(f"{path} is truncated: {data.size} bytes of data for shape {dims}", _FIX)
    return data.reshape(dims)


def load_fmnist(split: str = "train", root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] (0 = background) and labels int64 [N] in 0..9.

    split: "train" (60000) or "test" (10000). Raises EdgeqError naming the Debian package
    when the files are absent.
    """
    if split not in _FILES:
        raise EdgeqError(f"unknown Fashion-MNIST split {split!r}", "use split='train' or split='test'")
    d = data_dir(root)
    img_name, lab_name = _FILES[split]
    images = _read_idx(d / img_name, 3)
    labels = _read_idx(d / lab_name, 1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise EdgeqError(f"{d}: {images.shape[0]} images but {labels.shape[0]} labels for split {split!r}", _FIX)
    return images, labels


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] (or [28, 28]) -> float32 [N, 1, 28, 28] = pixel / 255, in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected images [N, 28, 28], got shape {x.shape}")
    return (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]
