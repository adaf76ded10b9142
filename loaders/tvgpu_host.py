"""torchvision-gpu's host stage, run in its reading threads: a file's bytes for the device
decoder, or a PIL decode for what the device decoder must not get (CMYK/YCCK JPEGs, PNG and
other formats); `jpeg_info` sniffs the JPEG's SOF marker without touching the scan data."""
from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image

from .datasets import undecodable
from .reference import to_rgb

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


def jpeg_info(data) -> tuple[int, bool] | None:
    """(components, progressive) from a JPEG's SOF marker; None if not a JPEG (or no SOF
    before the scan data). Reads the marker segments only, never the entropy-coded data."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image before any SOF
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker in _SOF:
            if i + 10 > n:
                return None
            return int(data[i + 9]), marker in _PROGRESSIVE
        i += 2 + length
    return None


class _Item:
    """One sample after the host stage: encoded bytes for the device, or a host RGB array."""

    __slots__ = ("data", "array", "reason", "path")

    def __init__(self, data=None, array=None, reason=None, path=None):
        self.data, self.array, self.reason, self.path = data, array, reason, path


def _host_decode(data) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    with Image.open(io.BytesIO(memoryview(data))) as img:
        return np.array(to_rgb(img))  # a writable copy


def _host_decode_file(path: str, data) -> np.ndarray:
    """_host_decode, with a failure turned into a DataError that names the file."""
    try:
        return _host_decode(data)
    except (ValueError, OSError) as e:
        raise undecodable(path, e) from e


def _read(path: str) -> _Item:
    """Host stage, run in the reading threads: the file's bytes, and PIL decode for what the
    device decoder must not get (PIL releases the GIL while decoding)."""
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(buf)
    info = jpeg_info(buf)
    if info is None:
        return _Item(array=_host_decode_file(path, buf), reason="not-jpeg", path=path)
    components, _progressive = info
    if components not in (1, 3):  # CMYK / YCCK (4): nvJPEG's colour conversion is not PIL's
        return _Item(array=_host_decode_file(path, buf), reason="cmyk" if components == 4 else f"{components}-components", path=path)
    return _Item(data=torch.frombuffer(buf, dtype=torch.uint8), path=path)


