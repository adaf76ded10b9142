"""Shared fixtures: tiny ImageFolder trees made in tmp dirs, caches kept out of ~/.cache."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from loaders.embedded import render


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test's caches (manifests, embedded data, .beton files) live in one tmp dir."""
    old = os.environ.get("LOADERBENCH_DATA")
    os.environ["LOADERBENCH_DATA"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("LOADERBENCH_DATA", None)
    else:
        os.environ["LOADERBENCH_DATA"] = old


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pyproject's addopts disable benchmarks for the normal run (each case runs once, untimed);
    # `pytest --benchmark-only` turns timing back on instead of refusing the combination.
    if config.getoption("benchmark_only", False):
        config.option.benchmark_disable = False


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def jpeg_bytes(label: int, index: int, mode: str = "RGB", progressive: bool = False, fmt: str = "JPEG") -> bytes:
    img = Image.open(io.BytesIO(render("train", label, index)))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, "PNG")
    else:
        img.save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def make_imagefolder(root: Path, train=(5, 4, 6), val=(2, 3, 2), classes=None, odd_formats=True) -> Path:
    """An ImageNet-layout tree with odd counts; with odd_formats, one grayscale, one CMYK,
    one progressive JPEG and one PNG among the train images, and a unicode class name."""
    classes = classes or ["apple", "big cat", "ñandú"][: len(train)]
    k = 0
    for split, counts in (("train", train), ("val", val)):
        for label, (name, n) in enumerate(zip(classes, counts)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                kind = k % 7 if odd_formats and split == "train" else 0
                k += 1
                ext, data = ".jpg", None
                if kind == 1:
                    data = jpeg_bytes(label, i + 100 * (split == "val"), "L")
                elif kind == 2:
                    data = jpeg_bytes(label, i + 100 * (split == "val"), "CMYK")
                elif kind == 3:
                    data = jpeg_bytes(label, i + 100 * (split == "val"), progressive=True)
                elif kind == 4:
                    ext, data = ".png", jpeg_bytes(label, i + 100 * (split == "val"), fmt="PNG")
                else:
                    data = render(split, label, i)
                (d / f"img_{i:03d}{ext}").write_bytes(data)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny(tiny_root):
    from loaders.data import scan

    return scan(tiny_root, progress=False)


def images_digest(t: torch.Tensor) -> list[int]:
    """Per-image fingerprints of a batch (for order and coverage checks)."""
    return [hash(x.float().cpu().numpy().round(3).tobytes()) for x in t]


def collect(loader):
    images, labels = [], []
    for x, y in loader:
        images.append(x.float().cpu().clone())  # clone: some backends reuse their buffers
        labels.append(y.cpu().clone())
    return torch.cat(images), torch.cat(labels)
