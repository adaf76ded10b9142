"""Dataset sources: an ImageFolder tree on disk, the generated ImageNet-like JPEG set
(`--data embedded`, the default) and real small images (`--data fashion-mnist`).

    from loaders.datasets import resolve
    dataset = resolve("embedded:200")      # or "fashion-mnist:600", or a path
"""
from __future__ import annotations

from pathlib import Path

from . import generated, small_images
from .dataset import DataError, Dataset, cache_root, undecodable
from .imagefolder import check_image, scan


def resolve(data: str = "embedded", skip_bad: bool = False, progress: bool = True, log=None) -> Dataset:
    """'embedded', 'embedded:N' (N train images per class), 'fashion-mnist[:N]' (real 28 px
    images from Debian's dataset-fashion-mnist) or a path to an ImageFolder tree. `log` gets
    one line when a tree changed since its last scan."""
    if small_images.is_small_images(data):
        root = small_images.prepare(data, cache_root())
        return scan(root, skip_bad=skip_bad, progress=progress, name=root.name, log=log)
    if data == "embedded" or data.startswith("embedded:"):
        per_class = int(data.split(":", 1)[1]) if ":" in data else None
        root = generated.generate(cache_root(), per_class=per_class, progress=progress)
        return scan(root, skip_bad=skip_bad, progress=progress, name=root.name, log=log)
    return scan(Path(data), skip_bad=skip_bad, progress=progress, log=log)


__all__ = ["DataError", "Dataset", "cache_root", "check_image", "resolve", "scan", "undecodable"]
