"""NVIDIA DALI backend: fused decode + crop in DALI's thread pool, uint8 out, shared normalise.

Pipelines
    train  fn.external_source(files' bytes, labels) -> fn.decoders.image_random_crop (decode fused with
           RandomResizedCrop's window: random_area=spec.scale, random_aspect_ratio=spec.ratio,
           10 attempts) -> fn.resize(res x res, linear, antialiased) -> fn.flip(horizontal=
           coin_flip(0.5)) -> uint8 NHWC
    val    fn.external_source in ImageFolder order -> fn.decoders.image -> one fn.resize (linear,
           antialiased) of the source window that torchvision's Resize(resize_side("val")) +
           CenterCrop(val_res) keeps, computed per sample from fn.peek_image_shape with
           torchvision's rounding -> uint8 (see _val_window)
EXIF orientation is ignored (adjust_orientation=False, on the decoder and on peek_image_shape), as
PIL/ImageFolder ignore it (loaders/image_modes.py: the one rule for image modes).
Both hand uint8 NHWC batches to the project's one `normalize` (no crop_mirror_normalize: one
normalisation in the project). Grayscale, CMYK, progressive JPEG and PNG all decode to RGB.

Devices
    device="auto" (`dali`): a GPU pipeline (decode with device="mixed": nvJPEG / the hardware
    decoder, resize/flip/crop on the GPU) when CUDA is available and spec.device is a CUDA
    device; otherwise the CPU pipeline (device_id=None). device="cpu" (`dali-cpu`) forces the CPU
    pipeline; device="gpu" forces the GPU one and is reported unavailable without CUDA.
    (The GPU path is written but untested: no GPU machine here has DALI installed.)
    Threads = spec.default_workers() (every core unless --workers says otherwise);
    prefetch_queue_depth = spec.prefetch (2).

Order and exact epochs
    DALI's file reader shuffles with its own RNG (and a shuffle buffer), which neither follows
    (seed, epoch) nor matches the other backends, and holds its file list as a build-time
    argument (seconds and ~1.75 GB per pipeline at ImageNet's size: loaders/dali_source.py).
    Instead an external source reads, batch by batch, the files of the epoch's order
    directly: files/labels permuted by torch.randperm seeded with seed*1_000_003 + epoch (the
    same permutation the base Loader uses, so with world=1 the train order is the torchvision
    backend's, sample for sample). Each pass has its own pipeline (new
    epoch, new resolution, a start_batch, or a second pass of a train epoch), whose source reads
    this rank's slice of the permutation from the pass's first batch on; its random-op seed is
    derived from (seed, epoch, rank[, start]), so the same seed + epoch give the same order AND
    the same crops. A resumed pass (set_epoch(e, start_batch=k)) reads exactly the remaining
    samples in the uninterrupted order; its crops differ (DALI draws them per batch slot from
    its own RNG sequence, which cannot be advanced without decoding). The next pass's pipeline
    is built and started before this one ends (loaders/dali_ahead.py: cross-epoch prefetch;
    the build grows with the file list, README "Speed on the CPU"). The val pipeline serves
    every pass: its source wraps around to the pass's first batch.
    The loader drives the pipeline itself (schedule_run / share_outputs, as DALI's
    DALIGenericIterator does, minus its copy): exactly len() iterations per pass, at most
    spec.prefetch outstanding per pipeline. The last batch is short (PARTIAL semantics); with
    spec.drop_last (train), the partial batch is not read (DROP).
    CPU batches reach `normalize` as zero-copy views of DALI's buffers, released after it.

Sharding (DALI's contiguous shards, sliced here: the source reads the rank's own slice)
    Every rank lays out the same epoch permutation (seed + epoch only); rank r reads the
    contiguous slice [n*r // world, n*(r+1) // world), DALI's shard_id/num_shards arithmetic. The slices partition the split: each
    sample exactly once per epoch over the ranks. The remainder (n % world) is spread by that
    floor arithmetic, so shard sizes differ by at most one sample; nothing is padded or dropped
    (PARTIAL). Ranks may therefore see different numbers of batches per epoch; `num_samples`,
    `len()` and `order()` report this rank's own slice. (The base Loader's strided split is not
    used: DALI only shards contiguously.)

Progressive resizing: set_resolution(r) takes effect at the next pass; the output size is a
build-time argument, so a pass at a new resolution builds its pipeline at its start (the one
started early, at the old resolution, is dropped).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Loader
from .dali_ahead import Ahead
from .dali_source import PassFiles
from .decode_errors import DaliGuard
from .normalize import labels_to, normalize
from .prefetch import Pass, requested

INSTALL = "install it with `pip install nvidia-dali-cuda120` (or `make venv`)"
DEVICES = ("auto", "cpu", "gpu")


def _import_error() -> str | None:
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install (missing shared libraries)
        return f"NVIDIA DALI cannot be imported ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {INSTALL}"
    return None


def unavailable_reason(device: str = "auto") -> str | None:
    """None when this backend can run here with `device`, else one line saying why and how."""
    if device not in DEVICES:
        return f"unknown DALI device {device!r}; choose from {', '.join(DEVICES)}"
    why = _import_error()
    if why:
        return why
    if device == "gpu" and not torch.cuda.is_available():
        return "the DALI GPU pipeline needs CUDA, which is not available here; use `dali` (falls back to the CPU pipeline) or `dali-cpu`"
    return None


def _seed(*parts: int) -> int:
    """A DALI pipeline seed (non-negative, < 2**31) from integers."""
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2**31 - 1)
    return h


def _val_window(shape, side: int, res: int):
    """torchvision's Resize(side) + CenterCrop(res) as one source-space ROI per sample.

    Resize: shorter side -> side, longer -> int(side * long / short) (truncated, as torchvision
    does); CenterCrop: top = round((new_h - res) / 2) with Python's half-to-even rounding.
    Mapping that crop back to the source gives the ROI that one fn.resize samples at exactly
    the positions resize-then-crop would (DALI's own resize_shorter + crop round differently:
    a half-pixel shift on a third of the images, up to ~11 levels mean on one image).
    """
    from nvidia.dali import fn
    from nvidia.dali import math as dmath

    h, w = shape[0], shape[1]
    short = dmath.min(h, w)
    starts, ends = [], []
    for size in (h, w):
        new = dmath.floor(side * size / short)
        k = dmath.floor((new - res) * 0.5)
        odd = (new - res) - 2.0 * k
        top = k + odd * (k - 2.0 * dmath.floor(k * 0.5))  # half-to-even
        scale = size / new
        starts.append(top * scale)
        ends.append((top + res) * scale)
    return fn.stack(*starts), fn.stack(*ends)


class DaliLoader(Loader):
    name = "dali"

    def __init__(self, split, dataset, spec, device: str = "auto"):
        reason = unavailable_reason(device)
        if reason:
            from . import BackendUnavailable

            raise BackendUnavailable(f"loader 'dali' unavailable: {reason}")
        super().__init__(split, dataset, spec)
        target = torch.device(spec.device)
        self.gpu = device == "gpu" or (device == "auto" and target.type == "cuda" and torch.cuda.is_available())
        self.device_id = None  # a CPU-only pipeline
        if self.gpu:
            self.device_id = target.index if target.type == "cuda" and target.index is not None else torch.cuda.current_device()
        self.threads = max(1, spec.default_workers())  # workers=0 ("in the main process") -> 1 thread
        self.samples = dataset.samples(split)
        self._pipe = None  # the pipeline of the pass being read (or last read)
        self._ahead = Ahead(self)  # the passes' pipelines, the next one started early
        self.settings.update(workers=self.threads, pipeline="gpu (mixed decode)" if self.gpu else "cpu", prefetch=spec.prefetch)

    # -- sizes / order: DALI's contiguous shards ---------------------------------------
    def _shard_bounds(self) -> tuple[int, int]:
        n, r, w = len(self.samples), self.spec.rank, self.spec.world
        return n * r // w, n * (r + 1) // w

    @property
    def num_samples(self) -> int:
        lo, hi = self._shard_bounds()
        n = hi - lo
        if self.drop_last:
            n -= n % self.spec.batch_size
        return n

    def _permutation(self, epoch: int) -> list[int]:
        n = len(self.samples)
        if not self.shuffle:
            return list(range(n))
        g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=g).tolist()

    def order(self, epoch: int | None = None) -> list[int]:
        lo, hi = self._shard_bounds()
        return self._permutation(self.epoch if epoch is None else epoch)[lo:hi][: self.num_samples]

    # -- pipeline -------------------------------------------------------------------------
    def _build(self, p: Pass):
        """A pipeline whose source reads pass p's files: this rank's slice of the epoch's
        permutation from p's first batch on."""
        from nvidia.dali import fn, pipeline_def, types

        spec, gpu = self.spec, self.gpu
        source = PassFiles(self.samples, self.order(p.epoch)[p.start * spec.batch_size:], spec.batch_size)
        epoch, res = p.epoch, p.res
        train = self.split == "train"
        decode_dev = "mixed" if gpu else "cpu"
        dev = "gpu" if gpu else "cpu"

        @pipeline_def(batch_size=spec.batch_size, num_threads=self.threads, device_id=self.device_id,
                      seed=_seed(spec.seed, epoch, spec.rank, train, *([p.start] if p.start else [])),
                      prefetch_queue_depth=spec.prefetch)
        def pipe():
            jpegs, lab = fn.external_source(source=source, num_outputs=2, batch=True, batch_info=True,
                                            dtype=[types.UINT8, types.INT64])
            if train:
                img = fn.decoders.image_random_crop(jpegs, device=decode_dev, output_type=types.RGB,
                                                    random_area=list(spec.scale), random_aspect_ratio=list(spec.ratio),
                                                    num_attempts=10, adjust_orientation=False)
                img = fn.resize(img, device=dev, size=[res, res], interp_type=types.INTERP_LINEAR, antialias=True)
                if spec.flip:
                    img = fn.flip(img, device=dev, horizontal=fn.random.coin_flip(probability=0.5))
            else:
                # jpeg_fancy_upsampling: libjpeg's (PIL's) chroma upsampling, for parity; train keeps
                # DALI's faster default (~5% on CPU), crops being random anyway.
                img = fn.decoders.image(jpegs, device=decode_dev, output_type=types.RGB, jpeg_fancy_upsampling=True,
                                        adjust_orientation=False)
                start, end = _val_window(fn.peek_image_shape(jpegs, dtype=types.FLOAT, adjust_orientation=False), spec.resize_side("val"), res)
                img = fn.resize(img, device=dev, size=[res, res], roi_start=start, roi_end=end, roi_relative=False,
                                interp_type=types.INTERP_LINEAR, antialias=True)
            return img, lab

        built = pipe()
        built.build()
        built.files = source  # which files each iteration reads (loaders/dali_source.py)
        return built

    def _to_torch(self, tensor_list):
        """A DALI batch as a torch tensor: a zero-copy view on the CPU (valid until
        release_outputs), a copy into a new CUDA tensor on the GPU."""
        from nvidia.dali.backend import TensorListGPU

        t = tensor_list.as_tensor()
        if not isinstance(tensor_list, TensorListGPU):
            return torch.from_numpy(np.asarray(t))
        from nvidia.dali.plugin.pytorch import feed_ndarray

        out = torch.empty(t.shape(), dtype=torch.uint8, device=torch.device("cuda", self.device_id))
        feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(out.device))
        return out

    def _batches(self):
        """Runs exactly the pass's batches through the pipeline built for it (prefetch_queue_depth
        ahead), and hands each batch to `normalize` before releasing
        DALI's buffers. Once the pass's last run is scheduled, the next pass's pipeline is
        started (loaders/dali_ahead.py): its first batches decode while this pass ends.
        Decoder messages on fd 2 -> one line naming the file (loaders/decode_errors.py)."""
        p, spec, bs = requested(self), self.spec, self.spec.batch_size
        done = False
        with DaliGuard(self) as guard:  # before take(): it schedules the pass's first runs
            try:
                run = guard.attach(self._ahead.take(p))
                self._pipe, remaining = run.pipe, self.num_samples - p.start * bs
                for j in range(run.total):
                    images, labels = guard.outputs(run.pipe, j, run.scheduled)
                    k = min(bs, remaining)
                    x = normalize(self._to_torch(images)[:k], spec)
                    y = labels_to(self._to_torch(labels)[:k], spec)
                    run.pipe.release_outputs()
                    remaining -= k
                    self._ahead.consumed()
                    yield guard.keep(j, run.scheduled, x, y)
                done = True
            finally:
                self._ahead.finish(done)
                self.stats["passes_prefetched"] = self._ahead.prefetched

    # -- lifecycle ------------------------------------------------------------------------
    def _close(self):
        cur = self._ahead.current
        DaliGuard.release_held(self, cur.next if cur is not None else None)  # fd 2 kept for the next pass
        self._ahead.drop()  # DALI frees its threads and buffers with the pipelines
        self._pipe = None

    def close(self):
        self._close()

    def describe(self):
        import nvidia.dali

        return {**super().describe(), "dali": nvidia.dali.__version__}


__all__ = ["DaliLoader", "unavailable_reason"]
