"""LoaderSpec: everything a backend needs to know to produce batches, shared by all backends."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .host import cpu_cores

# ImageNet statistics in 0-255 units: backends hand over uint8, the device normalises.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class LoaderSpec:
    """What every backend must honour, so that swapping backends changes speed, never pixels.

    train: RandomResizedCrop(res, scale, ratio) + horizontal flip (p=0.5)
    val:   resize shorter side to round(val_res / crop_ratio), center crop val_res
    """

    batch_size: int = 64
    res: int = 224  # train output side
    val_res: int = 224  # val output side
    crop_ratio: float = 224 / 256  # val: crop side / resized shorter side
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    workers: int | None = None  # None: the backend's default for this machine
    prefetch: int = 2  # batches in flight per worker (or pipeline depth)
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 | float16: what the model receives
    channels_last: bool = True
    drop_last: bool = False  # False: every sample exactly once per epoch
    seed: int = 0
    rank: int = 0
    world: int = 1
    options: dict = field(default_factory=dict, hash=False, compare=False)  # backend extras

    def resolution(self, split: str) -> int:
        return self.res if split == "train" else self.val_res

    def resize_side(self, split: str = "val") -> int:
        """Shorter side before the center crop (256 for 224 at the default ratio)."""
        return int(round(self.resolution(split) / self.crop_ratio))

    def with_(self, **kw) -> "LoaderSpec":
        return replace(self, **kw)

    def default_workers(self) -> int:
        """Workers when the user gives none: every core on a GPU machine (the CPU only
        decodes); on a CPU-only run the caller partitions cores and passes workers explicitly."""
        return self.workers if self.workers is not None else max(1, cpu_cores())
