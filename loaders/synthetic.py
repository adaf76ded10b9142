"""Synthetic backend: random batches made once on the device, the compute-only ceiling.

Same sizes, dtype and layout as a real loader over the same dataset (so epochs have the same
length), but no decoding and no transfer: every real backend's training throughput is divided
by the throughput reached with this one.
"""
from __future__ import annotations

import torch

from .base import Loader
from .normalize import normalize


class SyntheticLoader(Loader):
    name = "synthetic"

    def __init__(self, split, dataset, spec):
        super().__init__(split, dataset, spec)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _batch(self, res: int):
        if res not in self._cache:
            g = torch.Generator().manual_seed(self.spec.seed)
            bs = self.spec.batch_size
            images = torch.randint(0, 256, (bs, res, res, 3), dtype=torch.uint8, generator=g)
            labels = torch.randint(0, self.dataset.num_classes, (bs,), generator=g)
            self._cache = {res: (normalize(images, self.spec), labels.to(self.spec.device))}
        return self._cache[res]

    def _batches(self):
        images, labels = self._batch(self.res)
        left = self.num_samples
        while left > 0:
            n = min(left, self.spec.batch_size)
            yield (images, labels) if n == len(labels) else (images[:n], labels[:n])
            left -= n
