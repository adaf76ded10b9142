"""torchvision backend: ImageFolder semantics, PIL/libjpeg-turbo decode, uint8 batches, one
shared device normalise.

Two ways to run the per-sample work (spec.options["pool"]):

  "threads" (default up to 4 workers)  a thread pool in the main process; each task fills up to TASK samples
        of a batch in place, in a preallocated N x H x W x 3 uint8 tensor. JPEG decode
        (simplejpeg / PIL), the resize (torch's uint8 antialiased kernel or PIL) and the copies
        all release the GIL, so `workers` threads decode in parallel with no inter-process
        copies, no pickling, no np.stack.
  "processes" (default above 4 workers)  a torch DataLoader with `workers` persistent worker processes (uint8 collate),
        the sampler in the main process sending (index, res, epoch) per batch, or in chunks of
        options["chunk"] samples that the consumer joins into batches: for many-core machines
        where one process's GIL would become the limit.

Either way the epoch order is the base class's `order()` (same seed + epoch -> same order,
sharded rank::world), each sample's crop comes from an RNG seeded by (seed, epoch, index) (same
crops whatever workers, threads or scheduling), every sample exactly once per epoch (the last
batch is short unless drop_last), and set_epoch / set_resolution take effect at the next pass.
workers=0 decodes in the calling thread. Prefetch: workers x spec.prefetch batches in flight,
into the next epoch's first batches near an epoch's end (loaders/prefetch.py).

spec.options: pool ("threads" | "processes"), decoder ("auto": simplejpeg + torch resize for
train when simplejpeg is installed, see loaders/torchvision_decode.py; "pil": PIL decode + PIL resize
only), task (samples per thread task, default 64: 8, 16, 32 measured the same).

Both pools give the same pixels; on the 2-core machine the fast decoder (loaders/torchvision_decode.py)
was the bigger lever and threads beat processes by a few percent; on a 16-core host one
process's GIL caps a thread pool (README, "Speed on the CPU" and the H200 results).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler

from .base import Loader
from .datasets import DataError, undecodable
from .datasets.quarantine import bad_label, fill_or_mark, skip_bad
from .decode_errors import keep_good
from .faults import worker_died, worker_message
from .geometry import sample_rng
from .host import collect_before_fork, cpu_cores, leave_stop_signals_to_the_main_process
from .normalize import labels_to, normalize
from .prefetch import JobStream, batches, chain, following, indices, requested
from .reference import train_crop, val_crop
from .torchvision_decode import train_into, val_into

POOLS = ("threads", "processes")
TASK = 64  # samples per thread-pool task (see _batches)
THREADS_UP_TO = 4  # workers; with more, the default pool is processes (see default_pool)


def default_workers(spec) -> int:
    """Threads (or worker processes) when spec.workers is None: one per core. Tuned on the
    2-core machine (`bench.run --mode tune --loader torchvision`): 2 threads (= cores) beat 1
    and 3; more threads than cores only add contention with the main thread's normalise."""
    return spec.workers if spec.workers is not None else max(1, cpu_cores())


def default_pool(workers: int) -> str:
    """Threads on small machines, processes on big ones. Threads win by a few percent on 2 cores
    (module docstring); on the 16-core GPU host one process's GIL caps a thread pool: loader-only
    train, 16 workers, batch 256, measured there 1,753-1,856 img/s with threads and 7,635 with
    processes (README, "Results on a lent H200")."""
    return "threads" if workers <= THREADS_UP_TO else "processes"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def fill(out: torch.Tensor, path: str, split: str, spec, res: int, epoch: int, index: int) -> None:
    """One sample's pixels into out (res x res x 3 uint8). A file that passed the scan (magic
    bytes, end marker) but fails to decode (corrupt entropy data, say) is a DataError naming it."""
    try:
        _fill(out, path, split, spec, res, epoch, index)
    except (ValueError, OSError) as e:
        raise undecodable(path, e) from e


def _fill(out: torch.Tensor, path: str, split: str, spec, res: int, epoch: int, index: int) -> None:
    if spec.options.get("decoder") == "pil":  # the reference path: PIL decode + PIL resize
        with Image.open(path) as img:
            if split == "train":
                arr = train_crop(img, res, sample_rng(spec.seed, epoch, index), spec.scale, spec.ratio, spec.flip)
            else:
                arr = val_crop(img, res, spec.resize_side("val"))
        out.numpy()[...] = arr
        return
    data = _read(path)
    if split == "train":
        train_into(out, data, res, sample_rng(spec.seed, epoch, index), spec.scale, spec.ratio, spec.flip)
    else:
        val_into(out, data, res, spec.resize_side("val"))


def _batch(samples, split, spec, res, epoch, indices, pin, skip=False) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.empty((len(indices), res, res, 3), dtype=torch.uint8, pin_memory=pin)
    labels = torch.empty(len(indices), dtype=torch.int64)
    _fill_part(images, labels, samples, split, spec, res, epoch, indices, 0, skip)
    return images, labels


def _fill_part(images, labels, samples, split, spec, res, epoch, indices, start, skip=False) -> None:
    """Samples indices[k] into images[start + k] (a thread pool task: part of one batch). With
    skip (--skip-bad), one that cannot be decoded gets a marked label, dropped by keep_good."""
    for k, i in enumerate(indices, start):
        path, labels[k] = samples[i]
        if not fill_or_mark(fill, skip, images[k], path, split, spec, res, epoch, i):
            labels[k] = bad_label(i)


# -- processes: a DataLoader -----------------------------------------------------------------
class _Files(torch.utils.data.Dataset):
    def __init__(self, samples, split, spec, skip=False):
        self.samples, self.split, self.spec, self.skip = samples, split, spec, skip

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, key):
        index, res, epoch = key
        path, label = self.samples[index]
        out = torch.empty((res, res, 3), dtype=torch.uint8)
        if not fill_or_mark(fill, self.skip, out, path, self.split, self.spec, res, epoch, index):
            label = bad_label(index)
        return out, label


def batch_sizes(num_samples: int, batch_size: int) -> list[int]:
    """Sizes of an epoch's batches (num_samples already excludes what drop_last drops)."""
    full, rest = divmod(num_samples, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


class _Chunks(Sampler):
    """A batch sampler: each batch of the loader's current order cut into chunks of at most
    `chunk` samples, as lists of (index, res, epoch). The default chunk is the whole batch (one
    worker builds it, as measured). Smaller chunks let every worker work on the batch the
    consumer waits for: on the 16-core GPU host, training steps ran at full speed between
    stalls at each epoch start, when one worker's whole batch is all the consumer can wait on
    (README); bench/gpu_check.sh measures chunk=16 against the default."""

    def __init__(self, loader: "TorchvisionLoader", chunk: int):
        self.loader, self.chunk = loader, chunk

    def __iter__(self):
        """This pass's chunks, then the next passes' (prefetch.chain): the workers start on the
        next epoch while this one's last batches are consumed."""
        lo = self.loader
        for p, batch in chain(lo, lo._dl_start, lambda q: batches(lo, q)):
            for k in range(0, len(batch), self.chunk):
                yield [(i, p.res, p.epoch) for i in batch[k:k + self.chunk]]

    def __len__(self):
        return sum(math.ceil(n / self.chunk) for n in batch_sizes(self.loader.num_samples, self.loader.spec.batch_size))


def collate_uint8(batch):
    images = torch.stack([b[0] for b in batch])  # N,H,W,3 uint8
    labels = torch.tensor([b[1] for b in batch], dtype=torch.int64)
    return images, labels


class TorchvisionLoader(Loader):
    name = "torchvision"

    def __init__(self, split, dataset, spec):
        super().__init__(split, dataset, spec)
        self.workers = default_workers(spec)
        self.pool = spec.options.get("pool") or default_pool(self.workers)
        if self.pool not in POOLS:
            raise ValueError(f"torchvision loader: options['pool'] must be one of {POOLS}, not {self.pool!r}")
        self.samples = dataset.samples(split)
        self.skip_bad = skip_bad(dataset)
        self.pin = torch.device(spec.device).type == "cuda" and torch.cuda.is_available()
        self.settings.update(workers=self.workers, pool=self.pool, prefetch=spec.prefetch)
        self._exec = None
        self._dl = None
        self._stream = None  # threads: the batches in flight (loaders/prefetch.py)
        self._dl_iter, self._dl_start, self._dl_head, self._dl_prefetched = None, None, None, 0  # processes
        if self.pool == "processes":
            # Samples per worker task: a whole batch unless spec.options["chunk"] (see _Chunks).
            self.chunk = int(spec.options.get("chunk", 0)) or spec.batch_size
            per_batch = math.ceil(spec.batch_size / self.chunk)
            self.settings.update(chunk=self.chunk)
            self._dl = DataLoader(
                _Files(self.samples, split, spec, self.skip_bad),
                batch_sampler=_Chunks(self, self.chunk),
                num_workers=self.workers,
                collate_fn=collate_uint8,
                worker_init_fn=leave_stop_signals_to_the_main_process,
                pin_memory=self.pin,
                persistent_workers=self.workers > 0,
                # the same memory as spec.prefetch whole batches per worker
                prefetch_factor=max(1, spec.prefetch * per_batch) if self.workers > 0 else None,
            )
        elif self.workers > 0:
            self._exec = ThreadPoolExecutor(self.workers, thread_name_prefix="tv-decode")
            depth = self.workers * max(1, spec.prefetch)  # batches in flight
            self._stream = JobStream(self, depth, lambda p: batches(self, p), self._submit, self._wait, self._cancel)

    def _batches(self):
        p = requested(self)
        if self._dl is not None:
            yield from self._from_workers(p)
        elif self._exec is None:  # workers=0: in the calling thread
            args = (self.samples, self.split, self.spec, p.res, p.epoch)
            for chunk in batches(self, p):
                yield self._out(*_batch(*args, chunk, self.pin, self.skip_bad))
        else:
            for images, labels in self._stream.run(p):
                yield self._out(images, labels)
        self.stats["passes_prefetched"] = self._prefetched()

    def _prefetched(self) -> int:
        return self._stream.prefetched if self._stream is not None else self._dl_prefetched

    # -- threads: each batch cut into tasks of `task` samples that the threads fill in place,
    # so every thread works on the oldest batch first: the batch the main thread waits for is
    # finished by all threads together, not by one. The stream keeps workers x prefetch
    # batches in flight, into the next pass too (loaders/prefetch.py).
    def _submit(self, p, chunk):
        task = max(1, int(self.spec.options.get("task", TASK)))
        images = torch.empty((len(chunk), p.res, p.res, 3), dtype=torch.uint8, pin_memory=self.pin)
        labels = torch.empty(len(chunk), dtype=torch.int64)
        args = (self.samples, self.split, self.spec, p.res, p.epoch)
        futs = [self._exec.submit(_fill_part, images, labels, *args, chunk[k:k + task], k, self.skip_bad) for k in range(0, len(chunk), task)]
        return images, labels, futs

    @staticmethod
    def _wait(job):
        images, labels, futs = job
        for f in futs:
            f.result()
        return images, labels

    @staticmethod
    def _cancel(job):  # queued tasks are dropped; running ones finish into a batch nobody reads
        for f in job[2]:
            f.cancel()

    # -- processes: the DataLoader's sampler runs on into the next pass (_Chunks) -----------
    def _from_workers(self, p):
        if self._dl_head != p or self._dl_iter is None:
            if self._dl._iterator is None:  # the first pass forks the (persistent) workers
                collect_before_fork()
            self._dl_start = p
            self._dl_iter = iter(self._dl)  # the sampler starts at p here; in-flight work is drained
        else:
            self._dl_prefetched += 1
        self._dl_head = None  # unknown until the pass is read to its end
        device = torch.device(self.spec.device)
        for size in batch_sizes(len(indices(self, p)), self.spec.batch_size):
            try:
                parts = [next(self._dl_iter) for _ in range(math.ceil(size / self.chunk))]
            except DataError as e:  # re-raised by the DataLoader with a traceback around it
                raise DataError(worker_message(e)) from None
            except (RuntimeError, OSError, EOFError) as e:  # a worker killed: one line, not a traceback (loaders/faults.py)
                raise worker_died(e, self._dl) from None
            # Joined where the batch goes: on a GPU each chunk is copied over as it is
            # (pinned, asynchronous) and joined there, never once more on the host.
            if len(parts) == 1:
                images, labels = parts[0]
            else:
                images = torch.cat([p_[0].to(device, non_blocking=True) for p_ in parts])
                labels = torch.cat([p_[1] for p_ in parts])
            yield self._out(images, labels)
        self._dl_head = following(self, p)

    def _out(self, images, labels):
        """A filled uint8 batch as the contract's (images, labels), without samples marked bad."""
        images, labels = keep_good(self, images, labels)
        return normalize(images, self.spec), labels_to(labels, self.spec)

    def close(self):
        if self._dl is not None:
            it = getattr(self._dl, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
            self._dl = None
        if self._stream is not None:
            self._stream.drop()
        self._dl_iter = None
        if self._exec is not None:
            self._exec.shutdown(wait=True, cancel_futures=True)
            self._exec = None
