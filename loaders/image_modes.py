"""One rule for awkward image modes, the same pixels in every backend.

The rule is what torchvision's ImageFolder users get: `PIL.Image.open(f).convert("RGB")`
(torchvision.datasets.folder.pil_loader), with one fix.

  * alpha (RGBA, LA, P with a transparent index, PA): dropped, the colour channels kept as
    they are (not composited on black or white). convert("RGB") does exactly that; DALI's
    RGB decode drops it too.
  * palette (P), bilevel (1), grayscale (L, grayscale JPEG): expanded to three equal
    channels (gray) or the palette's colours. CMYK JPEG: PIL's conversion (no ICC profile).
  * 16-bit grayscale PNG (PIL mode I;16, I;16B, or I in old Pillow): the fix. convert("RGB")
    clips every value above 255 to 255, so a real 16-bit image comes out all white (mean 255).
    Here the 16-bit value v becomes v >> 8, its high byte: what PIL itself does with 16-bit
    colour PNGs (they open as 8-bit RGB/RGBA by their high byte, as libpng's strip_16 does), so
    every 16-bit PNG follows one rule. DALI rounds (v / 257): at most 1 level apart (mean
    0.13 levels on the test image), inside the parity bounds.
  * EXIF orientation: NOT applied. PIL's open() never applies it (only ImageOps.exif_transpose
    does, which pil_loader does not call): an image tagged "rotate 90" has its stored width and
    height and its stored pixels (tests/test_image_modes.py checks it against pil_loader).
    Applying it would change what ImageFolder users train on and evaluate; the backends that
    decode JPEGs themselves are told the same: simplejpeg and torchvision's decode_jpeg ignore
    EXIF, DALI gets adjust_orientation=False on its decoder AND on fn.peek_image_shape (whose
    default, True, made the val window come from the rotated shape: 40 levels off).

Where the rule is applied: every host decode goes through `to_rgb` (the torchvision backend's
PIL path, the reference pixels, torchvision-gpu's host fallback, the FFCV writer, which stores
the ruled pixels in the .beton). DALI decodes files itself and already agrees on every mode
listed (tests/test_image_modes.py, per backend), so no file needs re-encoding for it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's modes for 16-bit grayscale PNGs


def to_rgb(img: Image.Image) -> Image.Image:
    """An RGB image by the rule above: convert("RGB"), 16-bit grayscale by its high byte."""
    if img.mode == "RGB":
        return img
    if img.mode in SIXTEEN_BIT:
        v = np.asarray(img)
        if img.mode == "I":  # 32-bit container: a 16-bit PNG in old Pillow
            v = np.clip(v, 0, 65535)
        return Image.fromarray((v.astype(np.uint32) >> 8).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


__all__ = ["SIXTEEN_BIT", "to_rgb"]
