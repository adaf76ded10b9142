"""Files found bad at decode time: a JPEG whose header and end marker pass the scan
(imagefolder.check_image reads ~1 KiB) but whose body does not decode.

`quarantine(dataset, path, why)` records one: in `dataset.quarantined` (what the records count,
Dataset.describe()["quarantined"]), and, for a scanned tree, in the manifest's "bad" list and
quarantine.txt beside it, so that the next start knows it without decoding it again: it stops
at the scan naming the file, or with --skip-bad leaves it out there. The manifest's verdict is
dropped as soon as the file changes (the scan re-validates changed files). Thread-safe, and safe
across processes (DDP ranks): an flock around the manifest's rewrite.

`bad_label(i)` / `is_marked` carry a sample that failed in a DataLoader worker process to the
main process inside the batch's labels (-(index + 1)), so that the main process, which owns the
dataset and the records, quarantines it; `loaders.decode_errors.keep_good` then drops such rows from the batch.
"""
from __future__ import annotations

import fcntl
import json
import threading

from .dataset import DataError

_LOCK = threading.Lock()


def skip_bad(dataset) -> bool:
    """Whether bad files are left out (--skip-bad) instead of stopping the run."""
    return bool(getattr(dataset, "skip_bad", False))


def quarantine(dataset, path: str, why: str) -> bool:
    """Record `path` as bad; False if it was already recorded."""
    with _LOCK:
        if any(b["path"] == path for b in dataset.quarantined):
            return False
        dataset.quarantined.append({"path": path, "why": why, "found": "decode"})
        _persist(dataset, path, why)
    return True


def quarantine_counted(loader, path: str, why: str) -> None:
    """quarantine() at decode time, counted in the loader's facts (quarantined_at_decode)."""
    if quarantine(loader.dataset, path, why):
        loader.stats["quarantined_at_decode"] = loader.stats.get("quarantined_at_decode", 0) + 1


def _persist(dataset, path: str, why: str) -> None:
    from .imagefolder import _atomic_write

    cache = getattr(dataset, "cache_dir", None)
    manifest = cache / "manifest.json" if cache is not None else None
    if manifest is None or not manifest.exists():
        return  # not a scanned tree (a Dataset built in code): in memory only
    with open(cache / "manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return
        if all(b["path"] != path for b in m.get("bad", [])):
            m["bad"] = sorted(m.get("bad", []) + [{"path": path, "why": why}], key=lambda b: b["path"])
            _atomic_write(manifest, json.dumps(m, indent=1))
            _atomic_write(cache / "quarantine.txt", "".join(f"{b['path']}\t{b['why']}\n" for b in m["bad"]))


def leave_out(dataset, split: str, bad: list[tuple[int, str]]) -> int:
    """Quarantine the samples (index, one-line message naming the file) of `split` and take them
    out of it (a backend that converts the split first: FFCV); returns how many were new."""
    samples = dataset.samples(split)
    new = 0
    for i, message in bad:
        path = samples[i][0]
        new += quarantine(dataset, path, message[len(path) + 2:] if message.startswith(path) else message)
    drop = {i for i, _ in bad}
    if hasattr(samples, "keep"):
        import numpy as np

        dataset.splits[split] = samples.keep(np.array([i not in drop for i in range(len(samples))], dtype=bool))
    else:
        dataset.splits[split] = [s for i, s in enumerate(samples) if i not in drop]
    return new


def bad_label(index: int) -> int:
    return -(index + 1)


def marked_index(label: int) -> int:
    return -label - 1


def fill_or_mark(fill, skip: bool, *args) -> bool:
    """fill(*args); with skip, a DataError (the file cannot be decoded) returns False instead."""
    try:
        fill(*args)
        return True
    except DataError:
        if not skip:
            raise
        return False


__all__ = ["DataError", "bad_label", "fill_or_mark", "leave_out", "marked_index", "quarantine", "quarantine_counted", "skip_bad"]
