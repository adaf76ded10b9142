"""The torchvision backend's fast per-sample decoder: encoded bytes -> pixels written into a
batch slot, the same pixels as the reference path (loaders/reference.py) within rounding.

  * decode with simplejpeg (libjpeg-turbo, releases the GIL) when the file is a JPEG it can
    convert to RGB; PIL otherwise (PNG, CMYK, anything odd). Same IDCT and chroma upsampling as
    PIL's libjpeg-turbo: the same pixels.
  * train, where loaders/_native.c is built: only the pixels the crop reads are decoded (rows
    above it entropy-decoded only, rows below never, columns outside without IDCT), mirrored by
    the decoder when flipped; the same pixels as the full decode (tests/test_native.py). The
    README's "Speed on the CPU" section has the measurements.
  * train: the crop is resized by torch's antialiased bilinear uint8 kernel (the Pillow-SIMD
    algorithm; within 2 levels of PIL's `resize(box=...)`, mean 0.003); when the crop is at
    least 2x the output side, the decoder's DCT scaling (1/2, 1/4, 1/8) decodes fewer pixels
    and PIL resamples the exact (fractional) box, as `draft()` does.
  * val: decoded as above, then exactly torchvision's PIL Resize + CenterCrop (the DALI/FFCV
    parity tests compare against these pixels).
  * results are written straight into the batch buffer (no per-sample arrays, no np.stack).
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from .geometry import rrc_params
from .reference import to_rgb, train_crop, val_crop

# simplejpeg is a dependency of the package; the GPU machine's image lacks it (bench/gpu_check.sh
# carries its wheel), and without it every file takes the PIL path, same pixels, slower.
try:
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None
try:  # optional: built from loaders/_native.c by `pip install -e .` where libjpeg's headers are
    from . import _native
except ImportError:  # pragma: no cover - depends on the environment
    _native = None


def _header(data: bytes):
    """(width, height) when simplejpeg can decode `data` to RGB itself, else None."""
    if simplejpeg is None or data[:3] != b"\xff\xd8\xff":
        return None
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (w, h) if colorspace in ("YCbCr", "Gray", "RGB") else None  # CMYK/YCCK: PIL


def decode_rgb(data: bytes, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB (PIL's pixels); with min_size=(w, h) the decoder may scale down by
    1/2, 1/4, 1/8 as long as the result is at least that big."""
    if _header(data) is not None:
        mw, mh = min_size or (0, 0)
        return simplejpeg.decode_jpeg(data, "RGB", min_width=mw, min_height=mh)
    with Image.open(io.BytesIO(data)) as img:
        if min_size and img.format == "JPEG":
            img.draft("RGB", min_size)
        return np.asarray(to_rgb(img))


def _resize_into(out: torch.Tensor, crop: np.ndarray, res: int, flip: bool = False) -> None:
    """Antialiased bilinear resize of an HxWx3 uint8 crop into out (res x res x 3), the crop
    mirrored first if flip (the same pixels as mirroring the result: the filter is symmetric).
    The kernel writes straight into out (viewed as 1x3xHxW, channels_last): measured 0.13 vs
    0.35 ms an image for interpolate + a strided copy (+ flip) into the batch."""
    if flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
    src = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0)
    torch.ops.aten._upsample_bilinear2d_aa.out(src, [res, res], False, None, None, out=out.permute(2, 0, 1).unsqueeze(0))


def train_into(out: torch.Tensor, data: bytes, res: int, rng: np.random.Generator, scale, ratio, flip: bool) -> None:
    """Decode + RandomResizedCrop(res, scale, ratio) + horizontal flip of one encoded image,
    written into out (res x res x 3 uint8). Same RNG draws, in the same order, as train_crop."""
    size = _header(data)
    if size is None:  # PNG, CMYK, ...: the reference path
        with Image.open(io.BytesIO(data)) as img:
            out.numpy()[...] = train_crop(img, res, rng, scale, ratio, flip)
        return
    width, height = size
    top, left, h, w = rrc_params(rng, width, height, scale, ratio)
    do_flip = flip and rng.random() < 0.5
    if _native is not None:
        _train_region(out, data, width, height, (top, left, h, w), res, do_flip)
        return
    if min(w, h) >= 2 * res:  # DCT-scaled decode: fewer pixels, then PIL on the exact box
        arr = simplejpeg.decode_jpeg(data, "RGB", min_width=math.ceil(width * res / w), min_height=math.ceil(height * res / h))
        sy, sx = arr.shape[0] / height, arr.shape[1] / width
        img = Image.fromarray(arr)
        r = np.asarray(img.resize((res, res), Image.BILINEAR, box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy)))
        out.numpy()[...] = r[:, ::-1] if do_flip else r
        return
    arr = simplejpeg.decode_jpeg(data, "RGB")
    _resize_into(out, arr[top:top + h, left:left + w], res, do_flip)


def scale_eighths(width: int, height: int, min_w: int, min_h: int) -> int:
    """The smallest IDCT scaling num/8 (num 1..8) that keeps the image at least min_w x min_h:
    TurboJPEG's choice, hence simplejpeg's for the same min_width/min_height."""
    for num in range(1, 8):
        if (width * num + 7) // 8 >= min_w and (height * num + 7) // 8 >= min_h:
            return num
    return 8


def _train_region(out: torch.Tensor, data, width: int, height: int, box: tuple, res: int, flip: bool) -> None:
    """train_into's two paths with only the pixels they read decoded (loaders/_native.c):
    the crop itself, or at a DCT scale the box plus the resampling filter's reach. The same
    pixels as decoding everything (tests/test_native.py checks it)."""
    top, left, h, w = box
    if min(w, h) < 2 * res:  # full scale: exactly the crop (mirrored by the decoder), resized by torch
        crop = np.frombuffer(_native.decode(data, 8, top, left, h, w, flip), np.uint8).reshape(h, w, 3)
        _resize_into(out, crop, res)
        return
    num = scale_eighths(width, height, math.ceil(width * res / w), math.ceil(height * res / h))
    sw, sh = (width * num + 7) // 8, (height * num + 7) // 8
    sx, sy = sw / width, sh / height
    x0, y0, x1, y1 = left * sx, top * sy, (left + w) * sx, (top + h) * sy
    # PIL's bilinear reaches `support` = max(1, box/res) input pixels beyond each output
    # pixel's centre, clipped to the image: decode that much more (+2 for its rounding).
    m = math.ceil(max(1.0, (x1 - x0) / res, (y1 - y0) / res)) + 2
    rx0, ry0 = max(0, math.floor(x0) - m), max(0, math.floor(y0) - m)
    rx1, ry1 = min(sw, math.ceil(x1) + m), min(sh, math.ceil(y1) + m)
    # Pasted into an image of the full scaled size, so PIL resamples the very same box as on a
    # full decode (a box shifted to the region's corner rounds differently: 1-level changes).
    canvas = np.zeros((sh, sw, 3), np.uint8)
    canvas[ry0:ry1, rx0:rx1] = np.frombuffer(_native.decode(data, num, ry0, rx0, ry1 - ry0, rx1 - rx0), np.uint8).reshape(ry1 - ry0, rx1 - rx0, 3)
    r = np.asarray(Image.fromarray(canvas).resize((res, res), Image.BILINEAR, box=(x0, y0, x1, y1)))
    out.numpy()[...] = r[:, ::-1] if flip else r


def val_into(out: torch.Tensor, data: bytes, res: int, resize_side: int) -> None:
    """torchvision's Resize(resize_side) + CenterCrop(res) of one encoded image into out, to
    the pixel. (Resampling only the kept window with a fractional box is 2x less resize work
    but measured off by 1 level on 87 of 100 images: not done, val stays exact.)"""
    if _header(data) is not None:
        img = Image.fromarray(simplejpeg.decode_jpeg(data, "RGB"))
    else:
        img = Image.open(io.BytesIO(data))
    out.numpy()[...] = val_crop(img, res, resize_side)
