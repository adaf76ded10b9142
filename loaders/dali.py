"""NVIDIA DALI backend: fused decode + crop in DALI's thread pool, uint8 out, shared normalise.

Pipelines
    train  fn.external_source(files' bytes, labels, each sample's crop window and flip: computed
           by the feed with the torchvision backend's RandomResizedCrop draws from the per-sample
           RNG, loaders/dali_source.py) -> fn.decoders.image_slice (decode only that window) ->
           fn.resize(res x res, linear, antialiased) -> fn.flip(horizontal=the sample's flip) ->
           uint8 NHWC. The crops are the torchvision backend's, sample for sample.
    val    fn.external_source in ImageFolder order -> fn.decoders.image -> one fn.resize (linear,
           antialiased) of the source window that torchvision's Resize(resize_side("val")) +
           CenterCrop(val_res) keeps, computed per sample from fn.peek_image_shape with
           torchvision's rounding -> uint8 (see _val_window)
EXIF orientation is ignored (adjust_orientation=False, on the decoders and on peek_image_shape), as
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
    Instead an external source feeds, batch by batch, the files of the epoch's order
    directly: files/labels permuted by torch.randperm seeded with seed*1_000_003 + epoch (the
    same permutation the base Loader uses, so with world=1 the train order is the torchvision
    backend's, sample for sample), this rank's slice, from the pass's first batch on. Nothing
    DALI draws at random: order and crops depend on (seed, epoch, index) only, so a resumed pass
    (set_epoch(e, start_batch=k)) reads exactly the remaining batches of the uninterrupted
    epoch, crops included, and one pipeline per resolution serves every pass, the next pass's
    first batches decoding while this one ends (loaders/dali_ahead.py: cross-epoch prefetch).
    The loader drives the pipeline itself (schedule_run / share_outputs, as DALI's
    DALIGenericIterator does, minus its copy): exactly len() batches per pass, spec.prefetch
    iterations in flight. The last batch is short (PARTIAL semantics); with spec.drop_last
    (train), the partial batch is not read (DROP).
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
build-time argument, so a pass at a new resolution builds that resolution's pipeline (what the
old one had in flight is read and dropped).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Loader
from .dali_ahead import Stream
from .decode_errors import DaliGuard
from .normalize import labels_to, normalize
from .prefetch import requested

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
        self._stream = Stream(self)  # the pipeline, its feed and what is in flight (loaders/dali_ahead.py)
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
    @property
    def _pipe(self):
        return self._stream.pipe

    def _build(self, res: int, feed):
        """The pipeline at output size res, reading what `feed` hands it (loaders/dali_source.py:
        files, labels, and for train each sample's crop window and flip)."""
        from nvidia.dali import fn, pipeline_def, types

        spec, gpu, train = self.spec, self.gpu, self.split == "train"
        decode_dev = "mixed" if gpu else "cpu"
        dev = "gpu" if gpu else "cpu"
        # jpeg_fancy_upsampling: libjpeg's (PIL's) chroma upsampling, the CPU decoder's own; the
        # mixed (GPU) decoder needs it said. No random op: nothing depends on the seed here.
        decode = dict(device=decode_dev, output_type=types.RGB, jpeg_fancy_upsampling=True, adjust_orientation=False)
        resize = dict(device=dev, size=[res, res], interp_type=types.INTERP_LINEAR, antialias=True)

        @pipeline_def(batch_size=spec.batch_size, num_threads=self.threads, device_id=self.device_id,
                      seed=_seed(spec.seed, spec.rank), prefetch_queue_depth=self._stream.depth)
        def pipe():
            if train:
                jpegs, lab, anchor, shape, *flip = fn.external_source(
                    source=feed, num_outputs=5 if spec.flip else 4, batch=True, batch_info=True,
                    dtype=[types.UINT8, types.INT64, types.FLOAT, types.FLOAT, types.INT32][:5 if spec.flip else 4])
                img = fn.decoders.image_slice(jpegs, anchor, shape, axis_names="HW", normalized_anchor=False,
                                              normalized_shape=False, **decode)
                img = fn.resize(img, **resize)
                if spec.flip:
                    img = fn.flip(img, device=dev, horizontal=flip[0])
            else:
                jpegs, lab = fn.external_source(source=feed, num_outputs=2, batch=True, batch_info=True,
                                                dtype=[types.UINT8, types.INT64])
                img = fn.decoders.image(jpegs, **decode)
                start, end = _val_window(fn.peek_image_shape(jpegs, dtype=types.FLOAT, adjust_orientation=False), spec.resize_side("val"), res)
                img = fn.resize(img, roi_start=start, roi_end=end, roi_relative=False, **resize)
            return img, lab

        built = pipe()
        built.build()
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
        """Exactly the pass's batches, read from the stream (loaders/dali_ahead.py: the first
        ones already decoded if this pass is the one guessed), each handed to `normalize` before
        DALI's buffers are released; every release schedules one more iteration, of this pass or
        the next. Decoder messages on fd 2 -> one line naming the file (loaders/decode_errors.py)."""
        p, spec, stream = requested(self), self.spec, self._stream
        with DaliGuard(self) as guard:  # before begin(): it may schedule and drop batches
            stream.begin(p, guard.discard)
            self.stats["passes_prefetched"] = stream.prefetched
            for j in range(stream.total(p)):
                item, (images, labels) = guard.outputs()
                if item.pass_ != p or item.batch != j:  # the stream's invariant (begin): never expected
                    raise RuntimeError(f"dali: batch {item.batch} of {item.pass_} in flight where batch {j} of {p} was due")
                k = len(item.indices)
                x = normalize(self._to_torch(images)[:k], spec)
                y = labels_to(self._to_torch(labels)[:k], spec)
                stream.release()
                yield guard.keep(item, x, y)

    # -- lifecycle ------------------------------------------------------------------------
    def _close(self):
        DaliGuard.release_held(self)  # fd 2 kept while batches were in flight
        self._stream.drop()  # DALI frees its threads and buffers with the pipeline

    def close(self):
        self._close()

    def describe(self):
        import nvidia.dali

        return {**super().describe(), "dali": nvidia.dali.__version__}


__all__ = ["DaliLoader", "unavailable_reason"]
