"""Real small images: Fashion-MNIST (28x28 grayscale, 10 classes) written once as an ImageFolder.

The data set comes from a package, never from the network at run time: Debian's
`dataset-fashion-mnist` (apt-get install -y dataset-fashion-mnist) ships the four original
IDX files under /usr/share/datasets/fashion-mnist. `prepare` writes them as PNGs,

    <cache_root>/small-images/fashion-mnist[-N]/{train,val}/<class>/<index>.png

train from the 60,000 training images (or the first N of each class, in file order, for
'fashion-mnist:N'), val from the 10,000 test images. The tree is built in a temporary folder
and renamed into place when complete, so it is written once, deterministically, and a crash
half-way never leaves a partial tree behind.

    from loaders.datasets.small_images import prepare
    root = prepare("fashion-mnist:1000", cache_root())   # then loaders.datasets.scan(root)
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import DataError, publish

# Where the Debian package puts the IDX files; LOADERBENCH_FASHION_MNIST overrides it.
SOURCE_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
INSTALL = {"fashion-mnist": "apt-get install -y dataset-fashion-mnist"}
# Fashion-MNIST's labels 0..9 (zalandoresearch/fashion-mnist README), as folder names. The
# digit prefix keeps ImageFolder's sorted class order equal to the original label order.
CLASSES = {"fashion-mnist": ["0-tshirt-top", "1-trouser", "2-pullover", "3-dress", "4-coat",
                             "5-sandal", "6-shirt", "7-sneaker", "8-bag", "9-ankle-boot"]}
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def names() -> list[str]:
    return list(SOURCE_DIRS)


def is_small_images(data: str) -> bool:
    """True for 'fashion-mnist' and 'fashion-mnist:N' (the hook loaders.datasets.resolve uses)."""
    return data.split(":", 1)[0] in SOURCE_DIRS


def source_dir(base: str) -> Path:
    env = os.environ.get("LOADERBENCH_" + base.upper().replace("-", "_"))
    return Path(env) if env else SOURCE_DIRS[base]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip'd or not) as a uint8 array: N (labels) or N x H x W (images)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated ({data.size} bytes for shape {shape})")
    return data.reshape(shape)


def _parse(name: str) -> tuple[str, int | None]:
    base, _, n = name.partition(":")
    if base not in SOURCE_DIRS:
        raise DataError(f"unknown small-image data set {base!r}; choose from {', '.join(SOURCE_DIRS)} (':N' keeps N train images per class)")
    if n and (not n.isdigit() or int(n) < 1):
        raise DataError(f"{name!r}: the part after ':' must be a positive number of train images per class")
    return base, int(n) if n else None


def prepare(name: str, cache_root: Path) -> Path:
    """Write data set `name` ('fashion-mnist' or 'fashion-mnist:N') as an ImageFolder under
    cache_root once; return its root (train/ and val/ inside)."""
    base, per_class = _parse(name)
    root = Path(cache_root) / "small-images" / (base if per_class is None else f"{base}-{per_class}")
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root
    src = source_dir(base)
    missing = [f for pair in FILES.values() for f in pair if not (src / f).exists()]
    if missing:
        raise DataError(f"{src / missing[0]}: missing; install the data set with `{INSTALL[base]}` "
                        f"(or point LOADERBENCH_{base.upper().replace('-', '_')} at a folder holding the four IDX files)")
    classes = CLASSES[base]
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, (images_file, labels_file) in FILES.items():
        images, labels = read_idx(src / images_file), read_idx(src / labels_file)
        if len(images) != len(labels):
            raise DataError(f"{src}: {len(images)} {split} images but {len(labels)} labels")
        keep = np.arange(len(labels))
        if split == "train" and per_class is not None:  # the first N of each class, in file order
            keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(classes))]))
        for c in classes:
            (tmp / split / c).mkdir(parents=True, exist_ok=True)
        for i in keep:
            Image.fromarray(images[i], mode="L").save(tmp / split / classes[labels[i]] / f"{i:05d}.png", optimize=False)
    (tmp / "SOURCE.txt").write_text(f"{base}: {src} ({INSTALL[base]}); train {'all' if per_class is None else f'first {per_class} per class'}, val = test set\n")
    return publish(tmp, root)
