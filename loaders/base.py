"""The Loader contract and the ONE device-side normalisation every backend reuses."""
from __future__ import annotations

import abc
import math
from typing import Iterator

import torch

from .spec import LoaderSpec

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


_STATS: dict = {}
_LUTS: dict = {}
try:  # optional C helpers (loaders/_native.c, built by `pip install -e .`); torch ops without them
    from . import _native
except ImportError:  # pragma: no cover - depends on the build
    _native = None
_ALLOCATOR_TUNED = False


def keep_host_memory() -> None:
    """Let glibc reuse large freed blocks instead of returning them to the OS.

    A 64x3x224x224 float batch (38.5 MB) is above glibc's mmap threshold, so by default every
    batch gets fresh, page-faulted, zeroed pages: measured here, normalize took 55 ms per batch
    that way and 19 ms with the heap reused. Called once per process by the CLI and the
    benchmarks (a process-wide setting, so every backend of a run measures under it).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve big blocks from the heap
        libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD: keep freed heap memory for reuse
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _stats(spec: LoaderSpec, device: torch.device):
    key = (spec.mean, spec.std, str(device))
    if key not in _STATS:
        mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        _STATS[key] = (mean, 1.0 / std)
    return _STATS[key]


def normalize(images: torch.Tensor, spec: LoaderSpec, layout: str = "NHWC") -> torch.Tensor:
    """uint8 batch (NHWC or NCHW, host or device) -> normalised float batch on spec.device.

    The only place in the project where pixels become model inputs: moved as uint8 (4x less
    traffic than float), converted and normalised on the device in float32, then cast to the
    model's dtype and laid out channels_last.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    if layout == "NHWC":
        images = images.permute(0, 3, 1, 2)  # a view: NCHW shape, channels_last strides
    device = torch.device(spec.device)
    if images.device != device:
        images = images.to(device, non_blocking=True)
    mean, inv_std = _stats(spec, device)
    fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
    dtype = torch_dtype(spec.dtype)
    if device.type == "cpu" and _native is not None and images.shape[1] == 3 and images.is_contiguous(memory_format=torch.channels_last):
        return _normalize_lut(images, mean, inv_std, dtype).contiguous(memory_format=fmt)
    return _affine(images, mean, inv_std, dtype, fmt)


def _affine(images, mean, inv_std, dtype, fmt) -> torch.Tensor:
    """The normalisation itself: one new float32 tensor (keeping the NHWC strides), then in
    place: half the memory passes of (x.float() - mean) * inv_std (measured 55 vs 98 ms for
    64x224x224 on 1 core)."""
    out = images.to(torch.float32)
    out.sub_(mean).mul_(inv_std)
    return out.to(dtype=dtype, memory_format=fmt)


def _normalize_lut(images: torch.Tensor, mean, inv_std, dtype: torch.dtype) -> torch.Tensor:
    """normalize() on the CPU for a channels_last (NHWC-contiguous) batch, as a table lookup in C
    (loaders/_native.c): a channel's 256 uint8 values have 256 normalised values, so the table
    is _affine of 0..255 and the result is _affine's to the bit, in one pass instead of four
    (measured in the README's CPU results). The output keeps the NHWC memory order."""
    key = (tuple(mean.flatten().tolist()), tuple(inv_std.flatten().tolist()), dtype)
    if key not in _LUTS:
        ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 256, 1).expand(1, 1, 256, 3).contiguous()
        table = _affine(ramp.permute(0, 3, 1, 2), mean, inv_std, dtype, torch.channels_last)
        _LUTS[key] = table[0, :, 0, :].contiguous()  # (3, 256) in the output dtype
    out = torch.empty(images.shape, dtype=dtype, memory_format=torch.channels_last)
    _native.apply_lut(images.permute(0, 2, 3, 1).numpy(), out.permute(0, 2, 3, 1).view(torch.uint8).numpy(),
                      _LUTS[key].view(torch.uint8).numpy(), 3)
    return out


def labels_to(labels: torch.Tensor, spec: LoaderSpec) -> torch.Tensor:
    return labels.reshape(-1).to(device=spec.device, dtype=torch.int64, non_blocking=True)


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
    epoch -> same order); set_resolution(r) (train) for progressive resizing; close().
    """

    name = "base"

    def __init__(self, split: str, dataset, spec: LoaderSpec):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.split, self.dataset, self.spec = split, dataset, spec
        self.epoch = 0
        self.res = spec.resolution(split)
        self.shuffle = split == "train"
        self.drop_last = spec.drop_last and split == "train"
        self.stats: dict = {}  # backend facts for the record (conversion time, fallbacks, ...)

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
    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
        mine = [perm[i] for i in shard(n, self.spec.rank, self.spec.world)]
        return mine[: self.num_samples]

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
        """Backend facts for the result record."""
        return {"backend": self.name, "workers": self.spec.workers, **self.stats}
