"""The Loader contract every backend implements, and the sharding rule the host backends share."""
from __future__ import annotations

import abc
import math
from typing import Iterator

import torch

from .spec import LoaderSpec


def shard(n: int, rank: int, world: int) -> range:
    """Positions rank takes from an epoch's order of n samples: rank, rank+world, ...

    Every sample exactly once over the ranks; when world does not divide n, the first
    n % world ranks get one sample more (nothing padded, nothing dropped).
    """
    return range(rank, n, world)


def shard_size(n: int, rank: int, world: int) -> int:
    return len(shard(n, rank, world))


class Loader(abc.ABC):
    """Base of every backend. Subclasses implement `_batches()` yielding device batches.

    Contract: iter -> (images, labels) with images float(spec.dtype) N×3×H×W channels_last
    normalised on spec.device, labels int64 on spec.device; len -> batches per epoch;
    num_samples -> samples this rank sees per epoch; set_epoch(e) reshuffles (same seed +
    epoch -> same order); set_epoch(e, start_batch=k) makes the next pass start at batch k of
    that epoch (a run resumed mid-epoch: the samples before it are not read, the rest come in
    the same batches as in the uninterrupted epoch); set_resolution(r) (train) for progressive
    resizing; close().
    """

    name = "base"

    def __init__(self, split: str, dataset, spec: LoaderSpec):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.split, self.dataset, self.spec = split, dataset, spec
        self.epoch = 0
        self.start_batch = 0  # where the next pass starts in this epoch (see set_epoch)
        self.res = spec.resolution(split)
        self.shuffle = split == "train"
        self.drop_last = spec.drop_last and split == "train"
        # Two kinds of backend facts for the records, kept apart so that two runs of the same
        # configuration compare: `settings` define the configuration (workers, pool, pipeline:
        # recorded under config.backend), `stats` are what one run observed (construction and
        # first-batch seconds, cache hits, fallback counts: recorded under metrics.backend).
        self.settings: dict = {}
        self.stats: dict = {}

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        n = shard_size(len(self.dataset.samples(self.split)), self.spec.rank, self.spec.world)
        if self.drop_last:
            n -= n % self.spec.batch_size
        return n

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.spec.batch_size)

    # -- epoch / resolution ---------------------------------------------------------------
    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch must be in 0..{len(self)} (batches per epoch), not {start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def pass_order(self) -> list[int]:
        """The sample indices the next pass reads: this epoch's order from start_batch on. The
        start applies to one pass: the pass after it starts at the epoch's beginning again."""
        start, self.start_batch = self.start_batch, 0
        return self.order()[start * self.spec.batch_size:]

    def set_resolution(self, res: int) -> None:
        if self.split != "train":
            raise ValueError("set_resolution is for train loaders (val resolution is fixed)")
        self.res = int(res)

    def order(self, epoch: int | None = None) -> list[int]:
        """Sample indices this rank visits in an epoch, in order (shared by host backends)."""
        n = len(self.dataset.samples(self.split))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + (self.epoch if epoch is None else epoch))
            perm = torch.randperm(n, generator=g).tolist()
        else:
            perm = list(range(n))
        mine = shard(n, self.spec.rank, self.spec.world)  # a range: sliced at C speed (ImageNet: 0.14 s as a loop)
        return perm[mine.start:mine.stop:mine.step][: self.num_samples]

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches()

    @abc.abstractmethod
    def _batches(self):
        """Yield (images, labels) device batches for one pass over this rank's samples."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self) -> dict:
        """The backend's settings: what, beside the spec, defines this configuration."""
        return {"backend": self.name, "workers": self.spec.workers, **self.settings}

    def facts(self) -> dict:
        """What this run observed (times, cache hits, fallbacks): per-run, never configuration."""
        return dict(self.stats)
