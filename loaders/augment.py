"""Augmentation geometry shared by the host-decoding backends, identical to torchvision's.

Crops are drawn from a per-sample RNG seeded by (seed, epoch, index): the same seed and epoch
give the same crops whatever the number of workers or their scheduling.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, epoch, index))


def rrc_params(rng: np.random.Generator, width: int, height: int, scale, ratio) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params, same algorithm: (top, left, h, w)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    # Fallback to a central crop, as torchvision does.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, CMYK, palette and RGBA all become RGB (as ImageFolder's loader does)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def train_crop(img: Image.Image, res: int, rng: np.random.Generator, scale, ratio, flip: bool) -> np.ndarray:
    top, left, h, w = rrc_params(rng, img.width, img.height, scale, ratio)
    # draft() lets libjpeg decode at 1/2, 1/4, 1/8 scale when the crop is big enough that
    # the result still has >= res pixels across the crop: the same output pixels, less IDCT.
    if img.format == "JPEG":
        factor = min(w, h) / res
        if factor >= 2:
            before = img.size
            img.draft("RGB", (int(img.width / factor * 1.0001) + 1, int(img.height / factor * 1.0001) + 1))
            sx, sy = img.width / before[0], img.height / before[1]
            top, left, h, w = top * sy, left * sx, h * sy, w * sx
    img = to_rgb(img)
    out = img.resize((res, res), Image.BILINEAR, box=(left, top, left + w, top + h))
    arr = np.asarray(out)
    if flip and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr


def val_crop(img: Image.Image, res: int, resize_side: int) -> np.ndarray:
    """Resize the shorter side to resize_side (bilinear, antialiased), center crop res:
    torchvision's Resize(resize_side) + CenterCrop(res) on PIL images, to the pixel."""
    import torchvision.transforms.functional as TF

    img = TF.center_crop(TF.resize(to_rgb(img), resize_side), res)
    return np.asarray(img)
