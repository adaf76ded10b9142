"""What the DALI pipeline reads: batches fed by an external source, one iteration at a time.

DALI's file reader takes its list as a build-time argument: for ImageNet's 1.28 M files the
Python list of paths, its copy into the pipeline's definition and the reader's own copy took
~2.5 s + ~8 s and ~1.75 GB of memory per pipeline (measured here on 256,200 files: 0.5 s to
define, 1.7 s to build, +350 MB RSS). Instead the pipeline's source is a `Feed`: DALI calls it
once per iteration (in schedule_run, in the calling thread), and it hands over the next batch
of a plan of passes (loaders/prefetch.chain: this pass's batches, then the guessed next pass's),
reading that batch's files as uint8 arrays (~20-50 us a file: a few percent of its decode).

Train crops come with the files. For each sample the Feed computes torchvision's
RandomResizedCrop window and flip from the per-sample RNG (loaders/geometry: seeded by seed,
epoch and sample index) and the image's stored size (its header: EXIF ignored, the one rule of
loaders/image_modes.py), exactly as the torchvision backend does; the pipeline only decodes that
window (fn.decoders.image_slice), resizes and flips. So DALI's crops are the torchvision
backend's, sample for sample, they do not depend on which pipeline or pass decodes them, and
one pipeline serves every pass at a resolution (no rebuild per epoch: issue 18).

Every iteration fed is an `Item` in `Feed.inflight` (oldest first: share_outputs returns them in
that order) until the loader reads it; what DaliGuard learns about its files is kept on it.
"""
from __future__ import annotations

import io
from collections import deque

import numpy as np

from .datasets import undecodable
from .geometry import rrc_params, sample_rng
from .prefetch import Pass, batches, chain, following


def _read(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:  # called from schedule_run in our thread: one line naming the file
        raise undecodable(path, e) from None


def stored_size(data: np.ndarray, path: str) -> tuple[int, int]:
    """(width, height) as stored, from the header: what PIL's open() reports (no EXIF turn)."""
    from .torchvision_decode import simplejpeg

    if simplejpeg is not None and data[:3].tobytes() == b"\xff\xd8\xff":
        try:
            h, w, _, _ = simplejpeg.decode_jpeg_header(data)
            return w, h
        except ValueError:
            pass  # a JPEG simplejpeg does not take (lossless, arithmetic...): PIL reads its header
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data.tobytes())) as img:
            return img.size
    except (OSError, ValueError) as e:
        raise undecodable(path, e) from None


class Item:
    """One iteration fed to the pipeline: batch `batch` of pass `pass_`, its sample indices."""

    def __init__(self, pass_: Pass, batch: int, indices: np.ndarray, paths: list[str]):
        self.pass_, self.batch, self.indices, self.paths = pass_, batch, indices, paths
        self.checked = False  # DaliGuard: its files checked with the strict decoder
        self.bad: list[int] = []  # rows to drop (--skip-bad)
        self.errors: list = []  # (path, DataError) met while another batch was read


class Feed:
    """DALI external-source callback over a plan of passes (module docstring)."""

    def __init__(self, loader, train: bool):
        self.loader, self.train = loader, train
        self.samples, self.spec = loader.samples, loader.spec
        self.plan = None  # (pass, (batch, indices)) to feed, from the pass begun last (start)
        self.inflight: deque[Item] = deque()

    def start(self, p: Pass) -> None:
        """Feed pass p's batches next, then the passes that follow it (prefetch.following). A
        pass resumed at its end (start_batch = len) has none: the plan begins with the next."""
        if not batches(self.loader, p):
            p = following(self.loader, p)
        self.plan = chain(self.loader, p, lambda q: list(enumerate(batches(self.loader, q))))

    def __call__(self, info):
        try:
            p, (j, idx) = next(self.plan)
        except StopIteration:  # an empty pass: the loader never schedules one
            raise RuntimeError("dali: a pipeline iteration was scheduled past the planned passes") from None
        idx = np.asarray(idx, dtype=np.int64)
        paths, files = [], []
        labels = np.empty(len(idx), dtype=np.int64)
        for k, i in enumerate(idx.tolist()):
            path, labels[k] = self.samples[i]
            paths.append(path)
            files.append(_read(path))
        self.inflight.append(Item(p, j, idx, paths))
        if not self.train:
            return files, labels
        anchors, shapes, flips = self._crops(files, paths, idx, p.epoch)
        return (files, labels, anchors, shapes, flips) if self.spec.flip else (files, labels, anchors, shapes)

    def _crops(self, files, paths, idx, epoch: int):
        """Per sample: the crop's (top, left), its (height, width), and the flip; the draws of
        the torchvision backend (crop, then flip, from sample_rng(seed, epoch, index))."""
        spec, n = self.spec, len(files)
        anchors, shapes = np.empty((n, 2), np.float32), np.empty((n, 2), np.float32)
        flips = np.zeros(n, np.int32)
        for k, (data, path, i) in enumerate(zip(files, paths, idx.tolist())):
            width, height = stored_size(data, path)
            rng = sample_rng(spec.seed, epoch, i)
            top, left, h, w = rrc_params(rng, width, height, spec.scale, spec.ratio)
            anchors[k], shapes[k] = (top, left), (h, w)
            flips[k] = bool(spec.flip and rng.random() < 0.5)
        return anchors, shapes, flips
