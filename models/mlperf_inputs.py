"""Realistic inputs for the MLPerf Tiny models in ../shared/models/mlperf-tiny.

Real samples where the snapshot ships them, realistic stand-ins where it does not:

| model | inputs |
|---|---|
| ad01 | the 196 real log-mel windows of one ToyCar clip |
| sww01 | the 48 real log-filterbank samples (45 labelled calibration + 3 reference) |
| kws01 | MFCCs computed, as upstream's preprocessing describes, from 1 s windows of the real speech audio in sww01/test_data (plus the one real KWS sample) |
| ic01, ic01_large | 32x32 crops of scikit-image's bundled photographs, raw 0..255, NHWC |
| vww01 | 96x96 crops of the same photos, scaled to [0, 1], NHWC |

`mlperf_inputs(name, split)` gives float32 arrays in the model's own input layout;
`split="calib"` and `split="eval"` never share a sample.

The photos are the fourteen photographs edgeq.models.natural_images uses for ImageNet
(people, animals, objects, scenes, microscopy, astronomy; gray ones replicated to RGB),
not scikit-image's synthetic graphics: the issue asks for natural images, and until
2026-11-29 a colour wheel and a logo stood in among them (the colour wheel alone set
vww01's first activation range, 2.5x wider than any photo needs).
The image models' splits come in two kinds (`photos=`):
- "disjoint" (the default): calib crops come from photos 0, 2, 4, ... of that list and
  eval crops from photos 1, 3, 5, ...: calibration never sees the evaluation photos (a
  domain shift, as when a user calibrates on a few scenes of their own).
- "shared": both splits are random crops of all fourteen photos (different crops, none
  shared): the usual i.i.d. calibration set.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.models.natural_images import PHOTOS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf-tiny"


def mlperf_dir(name: str, root: Path | None = None) -> Path:
    d = (root or SHARED) / name
    if not d.is_dir():
        raise EdgeqError(f"MLPerf Tiny model folder {d} is absent", "place shared/models/mlperf-tiny beside the repository")
    return d


EVAL_SEED_OFFSET = 1000  # the eval crops' generator: a different stream from calib's


def _split(x: np.ndarray, split: str) -> np.ndarray:
    if split == "all":
        return x
    return x[0::2] if split == "calib" else x[1::2]


def mlperf_inputs(name: str, split: str = "eval", n: int = 128, root: Path | None = None,
                  photos: str = "disjoint") -> np.ndarray:
    d = mlperf_dir(name, root)
    if name == "ad01":
        x = np.load(d / "test_data" / "normal_id_01_00000000_windows.npz")["input"]
    elif name == "sww01":
        x = np.load(d / "test_data" / "sww_samples.npz")["input"]
    elif name == "kws01":
        real = np.load(d / "test_data" / "kws_sample.npz")["input"]
        x = np.concatenate([real, kws_mfcc_windows(d.parent / "sww01" / "test_data")])
    elif name in ("ic01", "ic01_large", "vww01"):
        if photos not in ("disjoint", "shared"):
            raise EdgeqError(f"unknown photo split {photos!r}", "use photos='disjoint' or 'shared'")
        size, seed = (96, 2) if name == "vww01" else (32, 1)
        x = _photo_split(size, n, seed, split, photos)
        return np.ascontiguousarray(x / 255.0 if name == "vww01" else x)
    else:
        raise EdgeqError(f"unknown MLPerf Tiny model {name!r}", "use kws01, ic01, ic01_large, ad01, vww01 or sww01")
    return np.ascontiguousarray(_split(x.astype(np.float32), split)[:n])


# ---- natural photos ------------------------------------------------------------------

def _photo_split(size: int, n: int, seed: int, split: str, photos: str) -> np.ndarray:
    if split not in ("calib", "eval", "all"):
        raise EdgeqError(f"unknown split {split!r}", "use calib, eval or all")
    if split == "all":
        return np.concatenate([_photo_split(size, n, seed, s, photos) for s in ("calib", "eval")])
    names = source_photos()
    if photos == "disjoint":
        names = names[0::2] if split == "calib" else names[1::2]
    return photo_crops(size, n, seed + (EVAL_SEED_OFFSET if split == "eval" else 0), names).astype(np.float32)


def source_photos() -> list[str]:
    """The photographs the image inputs are cut from (edgeq.models.natural_images.PHOTOS)."""
    return list(PHOTOS)


def photo_crops(size: int, count: int, seed: int, names: list[str]) -> np.ndarray:
    """`count` RGB uint8 crops [count, size, size, 3]: random square crops of the named
    photos, area-resized to `size`, with random horizontal flips (deterministic for a
    seed). Crop i comes from photo i mod len(names)."""
    from skimage import data as skdata
    from skimage.transform import resize
    rng = np.random.default_rng(seed)
    imgs = []
    for name in names:
        img = getattr(skdata, name)()
        img = np.asarray(img[0] if isinstance(img, tuple) else img)  # a stereo pair: its left view
        imgs.append(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3])
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        img = imgs[i % len(imgs)]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[y0:y0 + side, x0:x0 + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = np.clip(resize(crop, (size, size), anti_aliasing=True, preserve_range=True), 0, 255).round()
    return out


# ---- keyword-spotting MFCCs from real speech ----------------------------------------------

def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        channels = w.getnchannels()
    return raw.reshape(-1, channels)[:, 0].astype(np.float32) / 32768.0


def _mel_matrix(n_mels=40, n_fft=512, rate=16000, lo=20.0, hi=4000.0) -> np.ndarray:
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # HTK mel scale, as tf.signal uses
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)[1:]  # the DC bin gets no weight
    edges = np.linspace(mel(lo), mel(hi), n_mels + 2)
    m = mel(bins)[:, None]
    lower = (m - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - m) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return np.vstack([np.zeros((1, n_mels)), weights])


def kws_mfcc(audio: np.ndarray) -> np.ndarray:
    """One second of 16 kHz audio -> [49, 10] MFCCs (30 ms Hann window, 20 ms hop, fft 512,
    40 mels over 20-4000 Hz, log(mel + 1e-6), DCT-II scaled like tf.signal's mfccs)."""
    win, hop = 480, 320
    frames = np.stack([audio[i * hop:i * hop + win] for i in range(49)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    spec = np.abs(np.fft.rfft(frames * hann, n=512))
    logmel = np.log(spec @ _mel_matrix() + 1e-6)
    n = logmel.shape[1]
    k = np.arange(n)
    dct = 2.0 * np.cos(np.pi * k[None, :10] * (2 * k[:, None] + 1) / (2 * n))
    return (logmel @ dct / np.sqrt(2.0 * n)).astype(np.float32)


def kws_mfcc_windows(wav_dir: Path, hop_s: float = 0.125) -> np.ndarray:
    clips = [_read_wav(p) for p in sorted(Path(wav_dir).glob("*.wav"))]
    out = []
    for audio in clips:
        for start in range(0, len(audio) - 16000 + 1, int(hop_s * 16000)):
            out.append(kws_mfcc(audio[start:start + 16000]))
    return np.stack(out)[..., None]  # [N, 49, 10, 1] NHWC like the model's input
