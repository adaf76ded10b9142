"""loaders/_native.c: region decode gives a full decode's pixels, the LUT normalisation gives the
eager normalisation's bits, and both refuse bad input with a ValueError. `make venv` builds the
extension here (libjpeg-dev is installed with it), so it must import: no skip."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image

import loaders.normalize as B
import loaders.torchvision_decode as A
from loaders import LoaderSpec
from loaders import _native
from loaders.geometry import rrc_params, sample_rng
from loaders.datasets.generated import render
from tests.helpers import jpeg_bytes

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def variants(n: int = 6) -> list[bytes]:
    """Embedded photos re-encoded every way the decoder's paths differ: 4:4:4, 4:2:2, 4:2:0,
    progressive, grayscale."""
    out = []
    for i in range(n):
        img = Image.open(io.BytesIO(render("train", i % 10, i))).convert("RGB")
        for kw in ({"subsampling": 0}, {"subsampling": 1}, {"subsampling": 2}, {"subsampling": 2, "progressive": True}):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85, **kw)
            out.append(buf.getvalue())
        buf = io.BytesIO()
        img.convert("L").save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def region(data, num, top, left, h, w, flip=False) -> np.ndarray:
    return np.frombuffer(_native.decode(data, num, top, left, h, w, flip), np.uint8).reshape(h, w, 3)


def test_region_decode_is_the_full_decode_cut_out():
    """Every IDCT scale num/8, random regions (edges included), mirrored or not."""
    rng = random.Random(0)
    checked = 0
    for data in variants():
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
        for num in range(1, 9):
            sw, sh = _native.scaled_size(width, height, num)
            full = simplejpeg.decode_jpeg(data, "RGB", min_width=sw, min_height=sh)
            assert full.shape[:2] == (sh, sw), "simplejpeg picks the same num/8 for these minimums"
            for k in range(4):
                h, w = rng.randint(1, sh), rng.randint(1, sw)
                top, left = (0, 0) if k == 0 else (rng.randint(0, sh - h), rng.randint(0, sw - w))
                want = full[top:top + h, left:left + w]
                assert np.array_equal(region(data, num, top, left, h, w), want)
                assert np.array_equal(region(data, num, top, left, h, w, True), want[:, ::-1])
                checked += 1
    assert checked == 30 * 8 * 4


def test_scale_choice_is_turbojpegs():
    data = variants(1)[0]
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    for mw in range(1, width + 1, 7):
        num = A.scale_eighths(width, height, mw, 1)
        assert simplejpeg.decode_jpeg(data, "RGB", min_width=mw).shape[1] == _native.scaled_size(width, height, num)[0]


@pytest.mark.parametrize("bad,match", [
    (b"", "Empty input"),
    (b"\xff\xd8\xff\xe0 not a jpeg at all", "libjpeg"),
    (jpeg_bytes(0, 1, "CMYK"), "CMYK"),
])
def test_bad_input_is_a_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        _native.decode(bad, 8, 0, 0, 8, 8)


def test_truncated_data_under_the_region_fails_above_it_decodes():
    data = variants(1)[0]
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    cut = data[: len(data) // 3]
    assert region(cut, 8, 0, 0, 8, 8).shape == (8, 8, 3)  # rows before the cut are all there
    with pytest.raises(ValueError, match="Premature end"):
        _native.decode(cut, 8, height - 8, 0, 8, 8)
    with pytest.raises(ValueError, match="outside"):
        _native.decode(data, 8, height - 4, 0, 8, 8)
    with pytest.raises(ValueError, match="num/8"):
        _native.decode(data, 9, 0, 0, 8, 8)


def test_train_crops_are_the_full_decode_path_pixels(monkeypatch):
    """train_into with region decode vs the same RNG draws through a full decode: identical,
    on both the crop path (crop < 2x the output) and the DCT-scaled path (the filter's reach)."""
    datas = variants(8) + [render("train", i % 10, 40 + i) for i in range(24)]
    res, outs = 96, {}  # 96 px: both paths are taken
    for name, mod in (("region", _native), ("full", None)):
        monkeypatch.setattr(A, "_native", mod)
        x = torch.empty(len(datas), res, res, 3, dtype=torch.uint8)
        for i, data in enumerate(datas):
            A.train_into(x[i], data, res, sample_rng(3, 1, i), SCALE, RATIO, True)
        outs[name] = x.int()
    scaled = []
    for i, data in enumerate(datas):
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
        _, _, h, w = rrc_params(sample_rng(3, 1, i), width, height, SCALE, RATIO)
        scaled.append(min(w, h) >= 2 * res)
    scaled = torch.tensor(scaled)
    assert 0 < int(scaled.sum()) < len(datas)
    assert torch.equal(outs["region"][~scaled], outs["full"][~scaled]), "crop path"
    assert torch.equal(outs["region"][scaled], outs["full"][scaled]), "DCT-scaled path"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_lut_normalize_is_the_eager_normalize_to_the_bit(dtype, channels_last, monkeypatch):
    x = torch.randint(0, 256, (5, 37, 29, 3), dtype=torch.uint8)
    x[0, 0, 0] = torch.tensor([0, 255, 128], dtype=torch.uint8)
    spec = LoaderSpec(batch_size=5, res=37, device="cpu", dtype=dtype, channels_last=channels_last,
                      mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    lut = B.normalize(x, spec)
    monkeypatch.setattr(B, "_native", None)
    eager = B.normalize(x, spec)
    assert lut.dtype == eager.dtype and lut.stride() == eager.stride()
    assert torch.equal(lut, eager)


def test_apply_lut_checks_its_buffers():
    src = np.zeros(12, np.uint8)
    with pytest.raises(ValueError, match="channels"):
        _native.apply_lut(src, np.zeros(12, np.uint16), np.zeros((3, 256), np.uint16), 2)
    with pytest.raises(ValueError, match="channels"):
        _native.apply_lut(src, np.zeros(11, np.uint16), np.zeros((3, 256), np.uint16), 3)
    dst = np.zeros(12, np.float32)
    _native.apply_lut(np.arange(12, dtype=np.uint8), dst, (np.tile(np.arange(256), (3, 1)) * [[1], [2], [3]]).astype(np.float32), 3)
    assert dst.tolist() == [0, 2, 6, 3, 8, 15, 6, 14, 24, 9, 20, 33]
