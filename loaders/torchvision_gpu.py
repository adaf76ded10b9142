"""torchvision-gpu backend: files read on the host, JPEGs decoded in batches by nvJPEG
(`torchvision.io.decode_jpeg(list, device=...)`), crop/resize/flip on the device.

Same semantics as the `torchvision` backend, pixels included (within rounding):
  train: RandomResizedCrop geometry from loaders.geometry.rrc_params with the per-sample RNG
         sample_rng(seed, epoch, index) (the same crop, then the same flip draw), resized with
         antialiased bilinear (torch's antialias=True follows PIL's filter), flipped;
  val:   shorter side resized to spec.resize_side("val") (torchvision's output-size rule),
         center crop (torchvision's rounding).
Everything is RGB: grayscale JPEGs are expanded by the decoder (ImageReadMode.RGB). What
nvJPEG cannot or should not decode (CMYK/YCCK JPEGs, PNG and other formats, any JPEG the
device decoder rejects) is decoded on the host by PIL in the reading threads and counted in
`stats["cpu_fallbacks"]` (per reason in `stats["fallback_reasons"]`).

Pipeline: a thread pool (spec.workers threads, default every core) reads files ahead; a
producer thread (spec.options["producers"], default 1) decodes each batch on the device on its
own CUDA stream and builds the uint8 batch (N×3×H×W, channels_last strides); the consumer waits
on the batch's event and hands it to the ONE shared `normalize`. Up to spec.prefetch batches
per producer are in flight (loaders/tvgpu_pass.py). `stats` counts device decodes, host
fallbacks and the producers' seconds per stage (read_wait_s, decode_s, augment_s). Order comes
from the base class `pass_order()` (strided sharding, every sample exactly once per epoch).

Options: decoder (torchvision: nvJPEG through decode_jpeg, the default; nvimgcodec:
nvImageCodec, loaders/tvgpu_decoders.py); augment (batched: the whole batch's crop + resize +
flip as two batched matrix products, loaders/batched_resize.py; per-image: one crop/interpolate
per image, the earlier loop; auto, the default: batched on CUDA, per-image on the CPU); ahead (default true: the next
pass starts `prefetch` batches before this one ends, so an epoch start does not wait for a
whole batch: its producers are keyed on (epoch, resolution, order) and thrown away if the next
pass is not the one predicted, e.g. after set_resolution or set_epoch to another epoch, so
order and crops are exactly those of a pass started cold).

With spec.device="cpu" the same code runs with torchvision's CPU decoder: that is how its
logic is tested on machines without a GPU; the registry only offers it where CUDA is.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from .base import Loader
from .batched_resize import Plan, resize_batch
from .geometry import center_crop_start, resized_size, rrc_params, sample_rng
from .normalize import labels_to, normalize
from .tvgpu_decoders import make_decoder
from .tvgpu_host import _host_decode_file, _Item, jpeg_info  # noqa: F401 - jpeg_info: part of this module's API
from .tvgpu_pass import Pass

# Testing only: with this set to 1 the registry offers the backend without CUDA, and it runs
# its whole code path with torchvision's CPU decoder (bench/gpu_check.sh's smoke mode uses it).
CPU_DRY_RUN = "LOADERBENCH_TVGPU_ON_CPU"
__all__ = ["CPU_DRY_RUN", "TorchvisionGpuLoader", "jpeg_info", "plan_for", "resized_size", "unavailable_reason"]


def unavailable_reason(**_kw) -> str | None:
    """None where this backend can run; else one line: why not and what to use instead."""
    try:
        import torchvision
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError as e:  # pragma: no cover - torchvision is a core dependency
        return f"torchvision is missing ({e}); pip install torchvision"
    major, minor = (int(x) for x in torchvision.__version__.split("+")[0].split(".")[:2])
    if (major, minor) < (0, 19):
        return f"needs torchvision >= 0.19 for batched decode_jpeg (have {torchvision.__version__}); pip install -U torchvision"
    if not torch.cuda.is_available() and os.environ.get(CPU_DRY_RUN) != "1":
        return "needs a CUDA GPU; use `torchvision` on this machine"
    return None


def _crop_start(size: int, res: int) -> int:
    """CenterCrop's first kept row/column; negative where it pads (image smaller than res)."""
    return center_crop_start(size, res) if size >= res else -((res - size) // 2)


def plan_for(split: str, spec, h: int, w: int, res: int, epoch: int, index: int) -> Plan:
    """The sample's geometry, as the torchvision backend draws it: train RandomResizedCrop from
    sample_rng(seed, epoch, index), then the flip from the same RNG; val Resize + CenterCrop."""
    if split == "train":
        rng = sample_rng(spec.seed, epoch, index)
        top, left, ch, cw = rrc_params(rng, w, h, spec.scale, spec.ratio)
        flip = bool(spec.flip and rng.random() < 0.5)  # drawn after the crop, as train_crop does
        return Plan(top, left, ch, cw, res, res, 0, 0, flip)
    oh, ow = resized_size(h, w, spec.resize_side("val"))
    return Plan(0, 0, h, w, oh, ow, _crop_start(oh, res), _crop_start(ow, res))


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 CHW -> float CHW of `size` (not yet rounded), antialiased bilinear: PIL's filter."""
    x = img.float()
    if tuple(img.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _center_crop(img: torch.Tensor, res: int) -> torch.Tensor:
    """CHW center crop with torchvision's rounding (zero padding where the image is smaller)."""
    h, w = img.shape[-2:]
    if h < res or w < res:
        ph, pw = max(res - h, 0), max(res - w, 0)
        img = F.pad(img, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2))
        h, w = img.shape[-2:]
    top, left = int(round((h - res) / 2.0)), int(round((w - res) / 2.0))
    return img[:, top : top + res, left : left + res]


def resize_per_image(images: list[torch.Tensor], plans: list[Plan], res: int, out: torch.Tensor) -> torch.Tensor:
    """augment=per-image: per sample a crop view, one float conversion, one antialiased
    interpolate (and val's center crop) written into the batch; the flips once per batch."""
    flips = []
    for j, (img, p) in enumerate(zip(images, plans)):
        x = _resize(img[:, p.top : p.top + p.h, p.left : p.left + p.w], (p.out_h, p.out_w))
        out[j] = x if (p.out_h, p.out_w) == (res, res) else _center_crop(x, res)
        if p.flip:
            flips.append(j)
    if flips:
        idx = torch.tensor(flips, device=out.device)
        out[idx] = out[idx].flip(-1)
    return out


AUGMENTS = {"batched": resize_batch, "per-image": resize_per_image}


class TorchvisionGpuLoader(Loader):
    name = "torchvision-gpu"

    def __init__(self, split, dataset, spec):
        super().__init__(split, dataset, spec)
        self.device = torch.device(spec.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        opts = spec.options
        self.decoder = make_decoder(opts.get("decoder", "torchvision"), self.device)
        # auto: batched on CUDA (a few kernels per batch instead of ~4 launches per image); the
        # per-image loop on the CPU dry run, where the batched products' dense arithmetic costs
        # 3-5x more (tests/benchmarks/test_bench_tvgpu_augment.py) and launches cost nothing.
        augment = opts.get("augment", "auto")
        self.augment = ("batched" if self.cuda else "per-image") if augment == "auto" else augment
        self.ahead = bool(opts.get("ahead", True))
        self.threads = max(1, spec.default_workers())  # workers=0 ("in the main process"): one reading thread
        self.producers = int(opts.get("producers", 1))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tvgpu-read")
        self._samples = dataset.samples(split)
        self._passes: weakref.WeakSet = weakref.WeakSet()
        self._next: tuple | None = None  # (key, Pass): the next pass, started before this one ended
        self._last_epoch: int | None = None  # the epochs of the last two passes (_start_next's guess)
        self._prev_epoch: int | None = None
        self._lock = threading.Lock()
        # Producer-thread wall seconds per stage (host time: launches are asynchronous, but the
        # nvJPEG call returns only once its batch is decoded): where a batch's time goes.
        self.settings.update(workers=self.threads, producers=self.producers, decode_device=str(self.device),
                             decoder=self.decoder.name, augment=self.augment, ahead=self.ahead)
        self.stats.update(device_decoded=0, cpu_fallbacks=0, fallback_reasons={}, device_decode_errors=0,
                          read_wait_s=0.0, decode_s=0.0, augment_s=0.0, ahead_used=0, ahead_discarded=0)

    # -- device stage ---------------------------------------------------------------------
    def _decode(self, items: list[_Item]) -> list[torch.Tensor]:
        """CHW uint8 RGB tensors on the device, one per item (host arrays uploaded)."""
        out: list = [None] * len(items)
        todo = [j for j, it in enumerate(items) if it.data is not None]
        if todo:
            decoded = self.decoder.decode([items[j].data for j in todo])
            for j, t in zip(todo, decoded):
                if t is None:
                    items[j] = _Item(array=_host_decode_file(items[j].path, items[j].data), reason="device-decode-error", path=items[j].path)
                    self._count("device_decode_errors")
                else:
                    out[j] = t
            self._count("device_decoded", sum(t is not None for t in decoded))
        for j, it in enumerate(items):
            if out[j] is None:
                self._count("cpu_fallbacks")
                with self._lock:
                    reasons = self.stats["fallback_reasons"]
                    reasons[it.reason] = reasons.get(it.reason, 0) + 1
                out[j] = torch.from_numpy(it.array).permute(2, 0, 1).to(self.device, non_blocking=False)
        return out

    def _count(self, key: str, n: float = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _make_batch(self, indices: list[int], items: list[_Item], res: int, epoch: int):
        """uint8 N×3×res×res batch with channels_last strides (what normalize keeps), labels:
        the decoded images, each sample's geometry (plan_for), then the augment (batched: a
        few ops for the whole batch; per-image: a loop), rounding and the uint8 cast once."""
        t0 = time.perf_counter()
        images = self._decode(items)
        t1 = time.perf_counter()
        plans = [plan_for(self.split, self.spec, img.shape[-2], img.shape[-1], res, epoch, i) for i, img in zip(indices, images)]
        out = torch.empty((len(indices), 3, res, res), dtype=torch.float32, device=self.device,
                          memory_format=torch.channels_last)
        AUGMENTS[self.augment](images, plans, res, out)
        images = out.round_().clamp_(0, 255).to(torch.uint8)  # keeps the channels_last strides
        labels = torch.tensor([self._samples[i][1] for i in indices], dtype=torch.int64)
        self._count("decode_s", t1 - t0)
        self._count("augment_s", time.perf_counter() - t1)
        return images, labels

    # -- iteration ------------------------------------------------------------------------
    def _start(self, order: list[int], res: int, epoch: int) -> Pass:
        bs = self.spec.batch_size
        p = Pass(self, [order[i : i + bs] for i in range(0, len(order), bs)], res, epoch, self.spec.prefetch, self.producers)
        self._passes.add(p)
        return p

    def _take_next(self, key: tuple) -> Pass | None:
        """The pass started ahead, if it is this one; else it is stopped and thrown away."""
        nxt, self._next = self._next, None
        if nxt is None:
            return None
        if nxt[0] == key:
            self._count("ahead_used")
            return nxt[1]
        nxt[1].stop()
        self._count("ahead_discarded")
        return None

    def _start_next(self) -> None:
        """The predicted next pass: the next epoch (the same one if the caller has been
        iterating one epoch twice; val's order never changes), at today's resolution."""
        step = 0 if self._last_epoch is not None and self._prev_epoch == self._last_epoch else 1
        epoch = self.epoch + step if self.split == "train" else self.epoch
        order = self.order(epoch)
        self._next = (self._key(epoch, self.res, order), self._start(order, self.res, epoch))

    def _key(self, epoch: int, res: int, order: list[int]) -> tuple:
        """What makes two passes the same batches: order, resolution and (train) the epoch,
        which seeds the crops; val's pixels do not depend on the epoch."""
        return (epoch if self.split == "train" else None, res, order)

    def _batches(self):
        order, res, epoch = self.pass_order(), self.res, self.epoch
        self._prev_epoch, self._last_epoch = self._last_epoch, epoch
        run = self._take_next(self._key(epoch, res, order)) or self._start(order, res, epoch)
        n = len(run.chunks)
        try:
            for k in range(n):
                if self.ahead and self._next is None and k == max(0, n - max(1, self.spec.prefetch)):
                    self._start_next()  # this pass's producers are (nearly) done: the next one's first batches go in flight
                images, labels = run.get(k)
                yield normalize(images, self.spec, "NCHW"), labels_to(labels, self.spec)
        finally:
            run.stop()

    def facts(self) -> dict:
        with self._lock:
            stats = {**self.stats, "fallback_reasons": dict(self.stats["fallback_reasons"])}
        for k in ("read_wait_s", "decode_s", "augment_s"):
            stats[k] = round(stats[k], 3)
        return stats

    def close(self) -> None:
        self._next = None
        for p in list(self._passes):
            p.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
