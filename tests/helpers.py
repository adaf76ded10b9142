"""Helpers the tests share: tiny ImageFolder trees, batches collected from a loader, pixels back
in 0-255 levels, and a two-sample Kolmogorov-Smirnov statistic for crop distributions."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from loaders.datasets.generated import render


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


def images_digest(t: torch.Tensor) -> list[int]:
    """Per-image fingerprints of a batch (for order and coverage checks)."""
    return [hash(x.float().cpu().numpy().round(3).tobytes()) for x in t]


def collect(loader):
    images, labels = [], []
    for x, y in loader:
        images.append(x.float().cpu().clone())  # clone: some backends reuse their buffers
        labels.append(y.cpu().clone())
    return torch.cat(images), torch.cat(labels)


def to_levels(x: torch.Tensor, spec) -> torch.Tensor:
    """A normalised batch back in 0-255 levels (float, not rounded)."""
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return x.float().cpu() * std + mean


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov D: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


def ks_critical(n: int, m: int, alpha: float = 1e-3) -> float:
    """D above which two samples of sizes n and m differ at level alpha."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def cpu_context(cfg, dataset, workers: int = 0):
    """A harness Context for one CPU process (what bench.run builds), quiet."""
    from bench.harness.context import Context
    from bench.training.comm import Single
    from bench.training.compute import resolve_amp

    cpu = torch.device("cpu")
    return Context(cfg, dataset, cpu, resolve_amp(cfg.compute.amp, cpu), workers=workers, threads=torch.get_num_threads(),
                   comm=Single(), log=lambda m: None)
