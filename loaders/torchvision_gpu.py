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
per producer are in flight. `stats` counts device decodes, host fallbacks and the producers'
seconds per stage (read_wait_s, decode_s, augment_s). Order comes from the base class
`order()` (strided sharding, every sample exactly once per epoch).

With spec.device="cpu" the same code runs with torchvision's CPU decoder: that is how its
logic is tested on machines without a GPU; the registry only offers it where CUDA is.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .base import Loader
from .datasets import undecodable
from .geometry import rrc_params, sample_rng
from .normalize import labels_to, normalize
from .reference import to_rgb

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
# Testing only: with this set to 1 the registry offers the backend without CUDA, and it runs
# its whole code path with torchvision's CPU decoder (bench/gpu_check.sh's smoke mode uses it).
CPU_DRY_RUN = "LOADERBENCH_TVGPU_ON_CPU"


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


def jpeg_info(data) -> tuple[int, bool] | None:
    """(components, progressive) from a JPEG's SOF marker; None if not a JPEG (or no SOF
    before the scan data). Reads the marker segments only, never the entropy-coded data."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image before any SOF
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker in _SOF:
            if i + 10 > n:
                return None
            return int(data[i + 9]), marker in _PROGRESSIVE
        i += 2 + length
    return None


class _Item:
    """One sample after the host stage: encoded bytes for the device, or a host RGB array."""

    __slots__ = ("data", "array", "reason", "path")

    def __init__(self, data=None, array=None, reason=None, path=None):
        self.data, self.array, self.reason, self.path = data, array, reason, path


def _host_decode(data) -> np.ndarray:
    import io

    if isinstance(data, torch.Tensor):
        data = data.numpy()
    with Image.open(io.BytesIO(memoryview(data))) as img:
        return np.array(to_rgb(img))  # a writable copy


def _host_decode_file(path: str, data) -> np.ndarray:
    """_host_decode, with a failure turned into a DataError that names the file."""
    try:
        return _host_decode(data)
    except (ValueError, OSError) as e:
        raise undecodable(path, e) from e


def _read(path: str) -> _Item:
    """Host stage, run in the reading threads: the file's bytes, and PIL decode for what the
    device decoder must not get (PIL releases the GIL while decoding)."""
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(buf)
    info = jpeg_info(buf)
    if info is None:
        return _Item(array=_host_decode_file(path, buf), reason="not-jpeg", path=path)
    components, _progressive = info
    if components not in (1, 3):  # CMYK / YCCK (4): nvJPEG's colour conversion is not PIL's
        return _Item(array=_host_decode_file(path, buf), reason="cmyk" if components == 4 else f"{components}-components", path=path)
    return _Item(data=torch.frombuffer(buf, dtype=torch.uint8), path=path)


def resized_size(h: int, w: int, side: int) -> tuple[int, int]:
    """torchvision Resize(int) output size: shorter side -> side, longer truncated."""
    if w <= h:
        return int(side * h / w), side
    return side, int(side * w / h)


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


class TorchvisionGpuLoader(Loader):
    name = "torchvision-gpu"

    def __init__(self, split, dataset, spec):
        super().__init__(split, dataset, spec)
        from torchvision.io import ImageReadMode, decode_jpeg

        self._decode_jpeg, self._rgb = decode_jpeg, ImageReadMode.RGB
        self.device = torch.device(spec.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.threads = max(1, spec.default_workers())  # workers=0 ("in the main process"): one reading thread
        self.producers = int(spec.options.get("producers", 1))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tvgpu-read")
        self._samples = dataset.samples(split)
        self._stops: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        # Producer-thread wall seconds per stage (host time: launches are asynchronous, but the
        # nvJPEG call returns only once its batch is decoded): where a batch's time goes.
        self.settings.update(workers=self.threads, producers=self.producers, decode_device=str(self.device))
        self.stats.update(device_decoded=0, cpu_fallbacks=0,
                          fallback_reasons={}, device_decode_errors=0, read_wait_s=0.0, decode_s=0.0, augment_s=0.0)

    # -- device stage ---------------------------------------------------------------------
    def _decode(self, items: list[_Item]) -> list[torch.Tensor]:
        """CHW uint8 RGB tensors on the device, one per item (host arrays uploaded)."""
        out: list = [None] * len(items)
        todo = [j for j, it in enumerate(items) if it.data is not None]
        if todo:
            datas = [items[j].data for j in todo]
            try:
                decoded = self._decode_jpeg(datas, mode=self._rgb, device=self.device)
            except RuntimeError:
                decoded = []  # one bad image fails the batch: retry one by one
                for d in datas:
                    try:
                        decoded.append(self._decode_jpeg(d, mode=self._rgb, device=self.device))
                    except RuntimeError:
                        decoded.append(None)
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
        """uint8 N×3×res×res batch with channels_last strides (what normalize keeps), labels.

        Per sample: crop (a view), one float conversion, one antialiased resize written into
        a float batch; flips, rounding and the uint8 cast once per batch (fewer launches)."""
        t0 = time.perf_counter()
        images = self._decode(items)
        t1 = time.perf_counter()
        out = torch.empty((len(indices), 3, res, res), dtype=torch.float32, device=self.device,
                          memory_format=torch.channels_last)
        s, flips = self.spec, []
        for j, (index, img) in enumerate(zip(indices, images)):
            h, w = img.shape[-2:]
            if self.split == "train":
                rng = sample_rng(s.seed, epoch, index)
                top, left, ch, cw = rrc_params(rng, w, h, s.scale, s.ratio)
                if s.flip and rng.random() < 0.5:  # drawn after the crop, as train_crop does
                    flips.append(j)
                out[j] = _resize(img[:, top : top + ch, left : left + cw], (res, res))
            else:
                out[j] = _center_crop(_resize(img, resized_size(h, w, s.resize_side("val"))), res)
        if flips:
            idx = torch.tensor(flips, device=self.device)
            out[idx] = out[idx].flip(-1)
        images = out.round_().clamp_(0, 255).to(torch.uint8)  # keeps the channels_last strides
        labels = torch.tensor([self._samples[i][1] for i in indices], dtype=torch.int64)
        self._count("decode_s", t1 - t0)
        self._count("augment_s", time.perf_counter() - t1)
        return images, labels

    # -- iteration ------------------------------------------------------------------------
    def _batches(self):
        order, res, epoch, bs = self.order(), self.res, self.epoch, self.spec.batch_size
        chunks = [order[i : i + bs] for i in range(0, len(order), bs)]
        depth = max(1, self.spec.prefetch)
        # Producer p builds batches p, p+P, p+2P, ... into its own queue, so the consumer reads
        # batch k from queue k % P and the order needs no bookkeeping. With P > 1 one batch's
        # crops/resizes (Python, GIL) overlap another's nvJPEG decode (torchvision serialises
        # decode calls behind one lock, so more than 2 only adds GIL contention).
        P = max(1, min(self.producers, len(chunks)))
        queues = [queue.Queue(maxsize=depth) for _ in range(P)]
        stop = threading.Event()
        self._stops.add(stop)
        pool, samples = self._pool, self._samples

        def put(q, x) -> bool:
            while not stop.is_set():
                try:
                    q.put(x, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce(p: int):
            mine = chunks[p::P]
            q = queues[p]
            stream = torch.cuda.Stream(self.device) if self.cuda else None
            try:
                ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
                with ctx, torch.no_grad():
                    reads: deque = deque()
                    ahead = 0
                    for k, chunk in enumerate(mine):
                        while ahead < len(mine) and ahead <= k + depth:  # reads run ahead of decode
                            reads.append([pool.submit(_read, samples[i][0]) for i in mine[ahead]])
                            ahead += 1
                        futures = reads.popleft()
                        if stop.is_set():
                            return
                        t = time.perf_counter()
                        items = [f.result() for f in futures]
                        self._count("read_wait_s", time.perf_counter() - t)
                        images, labels = self._make_batch(chunk, items, res, epoch)
                        event = None
                        if stream is not None:
                            event = torch.cuda.Event()
                            event.record(stream)
                        if not put(q, (images, labels, event)):
                            return
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                put(q, e)

        threads = [threading.Thread(target=produce, args=(p,), name=f"tvgpu-produce-{p}", daemon=True) for p in range(P)]
        for t in threads:
            t.start()
        try:
            for k in range(len(chunks)):
                item = queues[k % P].get()
                if isinstance(item, BaseException):
                    raise item
                images, labels, event = item
                if event is not None:
                    current = torch.cuda.current_stream(self.device)
                    current.wait_event(event)
                    images.record_stream(current)  # made on the producer's stream, used on this one
                yield normalize(images, self.spec, "NCHW"), labels_to(labels, self.spec)
        finally:
            stop.set()
            for q in queues:
                with contextlib.suppress(queue.Empty):
                    while True:
                        q.get_nowait()
            for t in threads:
                t.join(timeout=30)

    def facts(self) -> dict:
        with self._lock:
            stats = {**self.stats, "fallback_reasons": dict(self.stats["fallback_reasons"])}
        for k in ("read_wait_s", "decode_s", "augment_s"):
            stats[k] = round(stats[k], 3)
        return stats

    def close(self) -> None:
        for stop in list(self._stops):
            stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
