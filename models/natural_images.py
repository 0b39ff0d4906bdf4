"""Realistic ImageNet-style inputs built from scikit-image's bundled photographs.

Without ImageNet on the machine, int8 fidelity of an ImageNet model is measured against
its own float outputs on natural photos: the activation statistics of real images (smooth
regions, edges, colour correlations) are what the quantizer's ranges and the DFQ passes
must cope with, and random noise does not have them.

`natural_images(n, seed)` returns float32 [n, 3, 224, 224], ImageNet-normalized, made
deterministically from the photos by random resized crops (torchvision's
RandomResizedCrop idea: 8%..100% of the area, aspect 3/4..4/3), horizontal flips and colour
jitter (brightness, contrast, saturation +-30%). Same seed, same images, on any machine.
"""
from __future__ import annotations

import numpy as np

from edgeq.errors import EdgeqError

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# Photographs bundled with scikit-image (no download). Gray ones are replicated to RGB.
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle",
          "hubble_deep_field", "immunohistochemistry", "camera", "coins", "moon",
          "brick", "grass", "gravel", "clock"]


def photos() -> list[np.ndarray]:
    """The source photographs as uint8 HxWx3."""
    try:
        from skimage import data
    except ImportError:
        raise EdgeqError("scikit-image is not installed (its photos are the natural inputs)",
                         "pip install scikit-image") from None
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        imgs = list(img[:2]) if isinstance(img, tuple) else [img]  # stereo pair: both views
        for im in imgs:
            im = np.asarray(im)
            if im.ndim == 2:
                im = np.repeat(im[..., None], 3, axis=2)
            out.append(im[..., :3].astype(np.uint8))
    return out


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 float in [0,1] -> size x size x 3, bilinear with antialiasing (like PIL)."""
    import torch
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                        align_corners=False, antialias=True)
    return t[0].numpy().transpose(1, 2, 0)


def _crop_box(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    s = min(h, w)  # fallback: centre square
    return (h - s) // 2, (w - s) // 2, s, s


def _jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img * rng.uniform(0.7, 1.3)                                   # brightness
    img = (img - img.mean()) * rng.uniform(0.7, 1.3) + img.mean()       # contrast
    gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = (img - gray[..., None]) * rng.uniform(0.7, 1.3) + gray[..., None]  # saturation
    return np.clip(img, 0.0, 1.0)


def natural_images(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    """n ImageNet-normalized NCHW float32 images. The first len(photos) are plain centre
    crops of each photo (the least augmented view); the rest are augmented crops."""
    rng = np.random.default_rng(seed)
    srcs = [p.astype(np.float32) / 255.0 for p in photos()]
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        src = srcs[i % len(srcs)]
        h, w = src.shape[:2]
        if i < len(srcs):
            s = min(h, w)
            y, x, ch, cw = (h - s) // 2, (w - s) // 2, s, s
        else:
            y, x, ch, cw = _crop_box(rng, h, w)
        img = _resize(src[y:y + ch, x:x + cw], size)
        if i >= len(srcs):
            if rng.random() < 0.5:
                img = img[:, ::-1]
            img = _jitter(rng, img)
        out[i] = ((img - MEAN) / STD).transpose(2, 0, 1)
    return out
