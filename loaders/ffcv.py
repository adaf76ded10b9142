"""FFCV backend: a `.beton` written once per dataset + write policy, read by FFCV's `Loader`.

Pipeline (CPU-safe, also used on GPU):
    train: RandomResizedCropRGBImageDecoder((r, r), spec.scale, spec.ratio) -> RandomHorizontalFlip
    val:   CenterCropRGBImageDecoder((r, r), ratio=spec.crop_ratio)
    label: IntDecoder
Every operation is numba-jitted, so FFCV runs the whole pipeline as ONE compiled stage and hands
over uint8 NHWC numpy batches; we wrap them with `torch.from_numpy` (no copy) and pass them to
the project's one `normalize` (which copies: FFCV reuses its batch buffers), labels are cloned.

Why not FFCV's usual tail `ToTensor, ToTorchImage, NormalizeImage, ToDevice`: on a machine
without CUDA that pipeline never leaves the `Loader` constructor. FFCV splits a pipeline into
stages that alternate jitted / not jitted (`pipeline/graph.py` `Graph.group_operations`); on CPU
`NormalizeImage` declares `jit_mode=True` (its numba path) after the non-jitted `ToTensor` and
`ToTorchImage`, so the plan needs three stages (jit, python, jit, ...). `group_operations`
never resets `next_front` between stages: from the second stage on, `current_front` and
`next_front` are the same set, so a node that belongs to a later stage is popped, re-added to the
set it was popped from, and popped again - forever, at 100% CPU. Any pipeline that needs more
than two stages hangs; on CUDA, `NormalizeImage` is not jitted, the plan has two stages and it
works, which is why FFCV's examples do not hit it. `_GuardedLoader` computes the plan with a
correct copy of that loop before FFCV does and raises `FfcvPipelineError` instead of hanging.

Order and sharding: the epoch order is the base class's `order()` (a seeded permutation for
train, ImageFolder order for val, then positions rank, rank+world, ...), handed to FFCV through a
small TraversalOrder adapter. It is the same order as the torchvision backend's, same seed +
epoch -> same order, and the ranks' union is the split with every sample exactly once. FFCV's own
`distributed=True` wraps torch's `DistributedSampler(drop_last=False)`, which pads the epoch by
repeating samples so every rank has ceil(n/world): not exact, so we do not use it.
Option `order="quasi_random"` uses FFCV's QUASI_RANDOM (needs `os_cache=False`) over this
rank's fixed slice rank::world (FFCV does not support it in distributed mode); its page table is
rebuilt each epoch because FFCV shuffles it in place (else same seed + epoch -> another order).
Crops and flips come from numba's unseeded RNG inside the decoder: random, not reproducible.
set_epoch(e, start_batch=k) hands FFCV the epoch's order from batch k on (exact order; crops
random as always). Cross-epoch prefetch and the warm start: loaders/ffcv_ahead.py.

spec.options: write_mode / max_resolution / jpeg_quality / compress_probability (the write
policy, see ffcv_convert.WRITE_DEFAULTS), order ("random" | "quasi_random"), os_cache (True),
batches_ahead (3, FFCV's default), progress (True: conversion progress bar).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from .base import Loader, shard
from .faults import ffcv_batches, watch_ffcv_threads
from .ffcv_ahead import Epochs, stop
from .ffcv_convert import ConversionError, ensure_beton, write_params
from .host import cpu_cores
from .normalize import labels_to, normalize
from .prefetch import Pass, indices, requested

INSTALL = "apt-get install -y pkg-config libturbojpeg0-dev libopencv-dev && pip install ffcv (or `make venv`)"

__all__ = ["ConversionError", "FfcvLoader", "FfcvPipelineError", "make_loader", "stage_plan", "unavailable_reason"]


class FfcvPipelineError(RuntimeError):
    """The pipeline would make FFCV 1.0.2's Loader constructor loop forever."""


_FFCV = None


def _ffcv():
    """Import FFCV lazily. `import ffcv` (and every Loader / iteration) calls
    torch.set_num_threads(workers) process-wide: we put the caller's count back."""
    global _FFCV
    if _FFCV is None:
        threads = torch.get_num_threads()
        try:
            import ffcv
            import ffcv.fields.basics
            import ffcv.fields.rgb_image  # loads the C extension (libturbojpeg, OpenCV)
            import ffcv.loader
            import ffcv.transforms
            import ffcv.traversal_order.base

            from .ffcv_types import install

            install()  # FFCV's memory managers mutated numba's shared types (loaders/ffcv_types.py)
        finally:
            torch.set_num_threads(threads)
        _FFCV = ffcv
    return _FFCV


def unavailable_reason() -> str | None:
    try:
        _ffcv()
    except Exception as e:  # ImportError, numba/numpy mismatch, missing shared library...
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"FFCV is not importable ({why}); install: {INSTALL}"
    return None


# -- the hang guard ------------------------------------------------------------------------
def stage_plan(graph) -> list[list[int]]:
    """FFCV's Graph.group_operations with the fix (a fresh next_front per stage)."""
    front, stages = set(graph.root_nodes), []
    while front:
        jitted, stage, later = len(stages) % 2 == 0, [], set()
        while front:
            node = front.pop()
            if node.is_jitted is None or node.is_jitted == jitted:
                stage.append(graph.node_to_id[node])
                front.update(graph.adjacency_list[node])
            else:
                later.add(node)
        stages.append(stage)
        front = later
    return stages


_CLASSES: dict = {}


def _classes():
    """FFCV subclasses, made on first use so that importing this module never imports FFCV."""
    if not _CLASSES:
        ffcv = _ffcv()

        class GuardedLoader(ffcv.loader.Loader):
            def generate_code(self):
                self.graph.collect_requirements()  # sets each node's jit mode
                stages = stage_plan(self.graph)
                if len(stages) > 2:
                    modes = " -> ".join("jitted" if i % 2 == 0 else "python" for i in range(len(stages)))
                    raise FfcvPipelineError(
                        f"this FFCV pipeline needs {len(stages)} stages ({modes}); FFCV's "
                        "Graph.group_operations loops forever beyond two. Keep jitted operations "
                        "before non-jitted ones (e.g. no NormalizeImage after ToTensor on CPU)")
                return super().generate_code()

        class EpochOrder(ffcv.traversal_order.base.TraversalOrder):
            """Hands FFCV the order our Loader computes. FFCV's Loader calls `order(loader)`
            on a TraversalOrder instance, which binds it here."""

            def __init__(self, order_fn):
                self.order_fn = order_fn

            def __call__(self, loader):
                self.loader, self.indices, self.seed = loader, loader.indices, loader.seed
                self.distributed, self.sampler = False, None
                return self

            def sample_order(self, epoch):
                return np.asarray(self.order_fn(epoch), dtype=np.int64)

        _CLASSES.update(loader=GuardedLoader, order=EpochOrder)
    return _CLASSES


def make_loader(path, batch_size: int, pipelines: dict, workers: int, order=None, **kw):
    """An FFCV Loader behind the hang guard, restoring torch's thread count afterwards.
    `order`: a callable epoch -> indices (our order), or an ffcv OrderOption."""
    cls = _classes()
    if callable(order) and not isinstance(order, cls["order"]):
        order = cls["order"](order)
    threads = torch.get_num_threads()
    try:
        return cls["loader"](str(path), batch_size=batch_size, num_workers=workers, order=order, pipelines=pipelines, **kw)
    finally:
        torch.set_num_threads(threads)


def clamp_workers(requested: int) -> int:
    """FFCV sets numba's thread count to num_workers, which raises above the core count."""
    import numba

    return max(1, min(requested, cpu_cores(), numba.config.NUMBA_NUM_THREADS))


# -- the backend ---------------------------------------------------------------------------
class FfcvLoader(Loader):
    name = "ffcv"

    def __init__(self, split, dataset, spec):
        super().__init__(split, dataset, spec)
        ffcv = _ffcv()
        opts = spec.options or {}
        self.params = write_params(opts)
        path, meta, built = ensure_beton(dataset, split, self.params, progress=opts.get("progress", True))
        self.path = path
        requested = spec.default_workers()
        workers = clamp_workers(requested)
        order_name = opts.get("order", "random") if split == "train" else "sequential"
        os_cache = bool(opts.get("os_cache", True))
        self.settings.update(
            write_policy=self.params,  # one policy per dataset: train and val share spec.options
            workers=workers,
            order=order_name,
            os_cache=os_cache,
        )
        self.stats.update(
            beton=str(path),
            beton_bytes=meta["bytes"],
            convert_s=meta["convert_s"],  # when it was written (0 cost now on a cache hit)
            beton_cached=not built,
        )
        if meta.get("quarantined_now"):  # --skip-bad: files the conversion could not decode, left out
            self.stats["quarantined_at_decode"] = meta["quarantined_now"]
        if workers != requested:
            self.stats["workers_requested"] = requested

        res = (self.res, self.res)
        if split == "train":
            self._decoder = ffcv.fields.rgb_image.RandomResizedCropRGBImageDecoder(res, scale=tuple(spec.scale), ratio=tuple(spec.ratio))
            image = [self._decoder] + ([ffcv.transforms.RandomHorizontalFlip(0.5)] if spec.flip else [])
        else:
            self._decoder = ffcv.fields.rgb_image.CenterCropRGBImageDecoder(res, ratio=spec.crop_ratio)
            image = [self._decoder]
        pipelines = {"image": image, "label": [ffcv.fields.basics.IntDecoder()]}

        kw = dict(os_cache=os_cache, drop_last=self.drop_last, batches_ahead=self.settings.setdefault("batches_ahead", int(opts.get("batches_ahead", 3))), seed=spec.seed)
        if order_name == "quasi_random":
            if os_cache:
                raise ValueError("order='quasi_random' needs os_cache=False (FFCV reads pages itself for it)")
            n = len(dataset.samples(split))
            kw.update(indices=np.array(shard(n, spec.rank, spec.world), dtype=np.int64))
            order = ffcv.loader.OrderOption.QUASI_RANDOM
        elif order_name in ("random", "sequential"):
            # base order(epoch) (permutation for train, ImageFolder order for val, sharded) from
            # the first batch of the pass being started (FFCV asks with the epoch only)
            order = lambda epoch: indices(self, self._starting)  # noqa: E731
        else:
            raise ValueError(f"order must be 'random' or 'quasi_random', not {order_name!r}")
        self._starting = Pass(self.epoch if self.shuffle else 0, self.res, 0)  # the pass whose EpochIterator is being made
        t0 = time.perf_counter()
        self._loader = make_loader(path, spec.batch_size, pipelines, workers, order=order, **kw)
        self.stats["construct_s"] = round(time.perf_counter() - t0, 3)
        self._quasi = order_name == "quasi_random"
        # the next epoch's iterator runs ahead (loaders/ffcv_ahead.py); the first one is
        # started now and its first batch (numba's compile) waited for: see warm()
        self._epochs = Epochs(self, self._start, overlap=os_cache)
        self.stats["warm_s"] = round(self._epochs.warm(self._starting), 3)

    def _start(self, p: Pass):
        """An EpochIterator for pass p (its producer thread starts at once)."""
        lo = self._loader
        if lo is None:
            raise RuntimeError("loader is closed")
        self._starting = p
        lo.next_epoch = p.epoch  # the epoch FFCV passes to the traversal order
        self._decoder.output_size = (p.res, p.res)  # FFCV allocates per iterator
        if hasattr(lo.traversal_order, "prepare_data_structures"):
            # QuasiRandom shuffles its page table in place, so an epoch's order would depend on
            # the epochs drawn before it: rebuild the table for same seed + epoch -> same order.
            lo.traversal_order.prepare_data_structures()
        watch_ffcv_threads()  # its producer thread starts in iter(lo) and may die before it is read
        threads = torch.get_num_threads()
        try:
            return iter(lo)
        finally:
            torch.set_num_threads(threads)

    def _batches(self):
        p = requested(self)
        it = self._epochs.take(p)
        skip = p.start if self._quasi else 0  # FFCV's own order: read up to the start, unseen
        n = math.ceil(len(it.order) / self.spec.batch_size)
        batches = ffcv_batches(it)  # not next(it): a dead FFCV thread would hang it (loaders/faults.py)
        threads = torch.get_num_threads()
        try:
            for k in range(n):
                images, labels = next(batches)
                x = normalize(torch.from_numpy(images), self.spec, "NHWC")  # a new tensor
                y = labels_to(torch.from_numpy(labels).reshape(-1).clone(), self.spec)
                self._epochs.after_batch(p, it, k == n - 1)
                if k >= skip:
                    yield x, y
        finally:
            stop(it)  # ends FFCV's producer thread (at once when the pass was read to its end)
            torch.set_num_threads(threads)
            self.stats["passes_prefetched"] = self._epochs.prefetched

    def close(self):
        if getattr(self, "_epochs", None) is not None:
            self._epochs.drop()
        self._loader = None
