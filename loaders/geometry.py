"""Augmentation geometry every backend shares: which pixels a sample's crop takes.

torchvision's rules, as numbers: `rrc_params` is RandomResizedCrop.get_params, drawn from a
per-sample RNG seeded by (seed, epoch, index), so the same seed and epoch give the same crops
whatever the number of workers or threads or their scheduling; `resized_size` is Resize(int)'s
output size and `center_crop_start` CenterCrop's offset.
"""
from __future__ import annotations

import math

import numpy as np


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


def resized_size(h: int, w: int, side: int) -> tuple[int, int]:
    """torchvision Resize(int) output size: shorter side -> side, longer truncated."""
    if w <= h:
        return int(side * h / w), side
    return side, int(side * w / h)


def center_crop_start(size: int, res: int) -> int:
    """CenterCrop's offset along one axis (Python's round: half to even, as torchvision)."""
    return int(round((size - res) / 2.0))
