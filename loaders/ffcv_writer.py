"""Writing a `.beton` with FFCV's DatasetWriter, with the two FFCV 1.0.2 writer traps handled
(without patching FFCV).

- A sample bigger than a page raises in a writer process (`malloc` / `MemoryError`); the main
  process then polls its progress counter forever. We size the page from the largest image the
  policy can store, and run our own worker function (`_safe_worker`, FFCV's
  `worker_job_indexed_dataset` plus error capture) that records the first failure, still counts
  every chunk as done (so FFCV's progress loop ends) and skips the rest; we then raise
  `ConversionError` naming the file and delete the partial output.
- A writer process that dies outright (segfault, OOM kill, `os._exit`) leaves the main loop and
  the other writers (spinning on the page-order lock) waiting forever. A watchdog thread sees the
  non-zero exit code, terminates the other writers and raises `ConversionError` in the
  converting thread. The same watchdog ends a conversion whose workers all finished after a
  failure that left samples uncounted.
"""
from __future__ import annotations

import ctypes
import functools
import math
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .datasets import DataError, undecodable
from .host import collect_before_fork, cpu_cores

MIN_PAGE = 8 << 20  # FFCV's default page (4 x 2 MiB)
MAX_SIDE = 65535  # FFCV stores width/height as uint16


class ConversionError(RuntimeError):
    """Writing the .beton failed; the message names the file and the cause."""


class UndecodableFiles(ConversionError, DataError):
    """Files that passed the scan but not the decoder: `bad` holds (sample index, one-line
    message) for each; the message is the first one's (+ how many more). Nothing was written."""

    def __init__(self, bad: list[tuple[int, str]]):
        self.bad = sorted(bad)
        more = f" (and {len(bad) - 1} more such files)" if len(bad) > 1 else ""
        super().__init__(self.bad[0][1] + more)


class _Images:
    """Indexable (uint8 HxWx3 RGB array, label) for FFCV's writer, decoded by the project's
    strict decoder with the one image-mode rule (torchvision_decode.decode_rgb): the pixels
    the torchvision backend starts from, and a corrupt JPEG body is a DataError naming it."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from .torchvision_decode import decode_rgb

        path, label = self.samples[i]
        try:
            with open(path, "rb") as f:
                arr = decode_rgb(f.read())
        except (ValueError, OSError) as e:
            raise undecodable(path, e) from e
        return np.ascontiguousarray(arr), int(label)


def page_size_for(samples, params: dict, progress: bool = False) -> int:
    """Smallest power-of-two page (>= FFCV's 8 MiB default) that holds the largest stored image
    (twice over unless raw: a JPEG of noise can exceed the raw size). Loader memory grows with
    it too: each decoder slot holds max_height x max_width x 3 bytes per sample."""
    if params["max_resolution"] is not None:
        largest = params["max_resolution"] ** 2 * 3
    else:
        largest = 0
        from tqdm import tqdm

        for path, _ in tqdm(samples, desc="ffcv: image sizes", unit="file", disable=not progress or len(samples) < 2000, leave=False):
            with Image.open(path) as img:
                w, h = img.size
            if max(w, h) > MAX_SIDE:
                raise ConversionError(f"{path}: {w}x{h} exceeds FFCV's {MAX_SIDE} px limit; set max_resolution")
            largest = max(largest, w * h * 3)
    margin = largest + (1 << 16) if params["write_mode"] == "raw" else 2 * largest + (1 << 16)
    need = max(MIN_PAGE, margin)
    page = 1 << math.ceil(math.log2(need))
    if page >= 1 << 32:
        raise ConversionError(f"an image of {largest} bytes cannot fit an FFCV page (< 4 GiB); set max_resolution")
    return page


def _safe_worker(input_queue, metadata_sm, metadata_type, fields, allocator, done_number, allocations_queue, dataset, errors, counts):
    """FFCV's worker_job_indexed_dataset, except that a failing sample is reported on `errors`
    instead of killing the worker, and every chunk is still counted, so the writer finishes.
    counts: shared [started, finished, failures, undecodable] for the watchdog; an undecodable
    file (DataError) goes on `errors` as (index, message) and the rest is still written."""
    from ffcv.writer import handle_sample

    def bump(i):
        with counts.get_lock():
            counts[i] += 1

    bump(0)
    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    field_names = metadata_type.names
    failed = False
    try:
        with allocator:
            while True:
                chunk = input_queue.get()
                if chunk is None:
                    break
                for dest_ix, source_ix in chunk:
                    if failed:
                        continue  # the conversion is lost anyway: finish fast
                    try:
                        handle_sample(dataset[source_ix], dest_ix, field_names, metadata, allocator, fields)
                    except DataError as e:  # decoded before anything is written: the others go on
                        errors.put((source_ix, str(e)))
                        bump(3)
                    except BaseException as e:  # noqa: BLE001 - reported to the parent
                        failed = True
                        errors.put(f"{dataset.samples[source_ix][0]}: {type(e).__name__}: {e}")
                        bump(2)
                with done_number.get_lock():
                    done_number.value += len(chunk)
    except BaseException as e:  # noqa: BLE001 - e.g. flushing the last page: the watchdog ends it
        errors.put(f"writer process: {type(e).__name__}: {e}")
        bump(2)
    finally:
        del metadata
        allocations_queue.put(allocator.allocations)
        bump(1)


class _WriterFailed(BaseException):
    pass


class _Watchdog(threading.Thread):
    """Raises _WriterFailed in `target` (the converting thread) when FFCV's writer would wait
    forever: a writer process gone without finishing (killed, segfault, os._exit), or every
    writer finished after a failure that left samples uncounted."""

    def __init__(self, target: int, workers: int, counts):
        super().__init__(daemon=True)
        self.target, self.workers, self.counts = target, workers, counts
        self.before = set(mp.active_children())
        self.stop = threading.Event()
        self.seen: set = set()
        self.died: str | None = None

    def _check(self, t0) -> bool:
        live = [p for p in mp.active_children() if p not in self.before]  # first live, then counts
        self.seen.update(live)
        started, finished, failures = self.counts[:3]
        if started - finished > len(live):
            return True  # one started and is gone without finishing
        if not live and finished < self.workers and time.monotonic() - t0 > 10:
            return True  # died before starting
        return failures > 0 and finished == self.workers

    def run(self):
        t0, strikes = time.monotonic(), 0
        while not self.stop.wait(0.2):
            strikes = strikes + 1 if self._check(t0) else 0
            if strikes < 2:  # twice in a row: a worker starting between the two reads is no death
                continue
            codes = sorted({p.exitcode for p in self.seen if p.exitcode not in (None, 0)})
            self.died = f"a writer process exited with code {codes[0]}" if codes else "a writer process died without finishing (killed, crashed or exited)"
            for p in self.seen:
                if p.exitcode is None:
                    p.terminate()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.target), ctypes.py_object(_WriterFailed))
            return


def convert(samples, path: Path, params: dict, workers: int | None = None, progress: bool = True) -> int:
    """Write samples [(path, label)] to `path` atomically; returns the page size used."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.utils import chunks
    from ffcv.writer import DatasetWriter

    if not samples:
        raise ConversionError(f"{path}: no samples to write")
    page = page_size_for(samples, params, progress)
    workers = max(1, min(workers or cpu_cores(), cpu_cores(), len(samples)))
    chunksize = max(1, min(100, math.ceil(len(samples) / (4 * workers))))
    fields = {
        "image": RGBImageField(
            write_mode=params["write_mode"],
            max_resolution=params["max_resolution"],
            jpeg_quality=params["jpeg_quality"],
            compress_probability=params["compress_probability"] or 0.5,
        ),
        "label": IntField(),
    }
    tmp = path.with_suffix(f".beton.tmp{os.getpid()}")
    collect_before_fork()
    writer = DatasetWriter(str(tmp), fields, page_size=page, num_workers=workers)
    errors, counts = mp.Queue(), mp.Array("i", 4)
    dog = _Watchdog(threading.get_ident(), workers, counts)
    dog.start()
    interrupted = False
    try:
        todo = chunks(list(enumerate(range(len(samples)))), chunksize)
        with _quiet(not progress):
            writer._write_common(len(samples), todo, _safe_worker, (_Images(samples), errors, counts))
    except _WriterFailed:
        interrupted = True
        sm = getattr(writer, "metadata_sm", None)
        if sm is not None and not isinstance(sm, int):
            try:
                sm.close()
                sm.unlink()
            except (OSError, FileNotFoundError):
                pass
    finally:
        dog.stop.set()
        dog.join()
        for p in dog.seen:
            p.join(timeout=5)
    failure, bad = _outcome(errors, counts, (dog.died or "a writer process died") if interrupted else None)
    if failure is not None or counts[3]:
        tmp.unlink(missing_ok=True)
    if failure is not None:
        raise ConversionError(f"FFCV conversion to {path.name} failed: {failure}")
    if counts[3]:
        raise UndecodableFiles(bad or [(-1, f"{counts[3]} file(s) could not be decoded")])
    os.replace(tmp, path)
    return page


def _outcome(errors, counts, died: str | None) -> tuple[str | None, list]:
    """(the failure that stops the conversion or None, [(index, message)] of undecodable files)."""
    messages = []
    for _ in range(counts[2] + counts[3]):
        try:
            messages.append(errors.get(timeout=5))
        except Exception:  # queue.Empty: a message was lost, the count was not
            break
    errors.close()
    bad = [m for m in messages if isinstance(m, tuple)]
    if counts[2]:
        return next((m for m in messages if isinstance(m, str)), f"{counts[2]} sample(s) failed"), bad
    return died, bad


class _quiet:
    """Silence FFCV's own tqdm bar when progress is off: it offers no switch, so its module's
    `tqdm` name is swapped for a disabled one while the writer runs."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        if self.on:
            import ffcv.writer
            from tqdm import tqdm

            self.old = ffcv.writer.tqdm
            ffcv.writer.tqdm = functools.partial(tqdm, disable=True)

    def __exit__(self, *exc):
        if self.on:
            import ffcv.writer

            ffcv.writer.tqdm = self.old
