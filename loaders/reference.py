"""The reference pixels: what torchvision's ImageFolder + transforms give on PIL images.

`train_crop` is RandomResizedCrop + horizontal flip, `val_crop` Resize + CenterCrop; the other
backends' parity tests compare against these, and the torchvision backend uses them for files
its fast decoder does not take (PNG, CMYK, anything odd) and with options decoder=pil. Image
modes follow loaders/image_modes.py (ImageFolder's convert("RGB"), 16-bit PNGs by the high byte).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .geometry import rrc_params
from .image_modes import to_rgb  # the one rule for alpha, palette, 16-bit, CMYK, EXIF (see there)


def train_crop(img: Image.Image, res: int, rng: np.random.Generator, scale, ratio, flip: bool) -> np.ndarray:
    """PIL decode + RandomResizedCrop + flip (the flip drawn after the crop, from the same RNG)."""
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
