"""Scan and validate an ImageNet-layout ImageFolder tree, with a manifest cached beside the data.

Samples come in ImageFolder order (sorted classes, sorted files, as
torchvision.datasets.ImageFolder lists them). Every start lists the tree and stats every file
(listing.py; ImageNet's 1.33 M files: ~2.5 s); the manifest remembers each file's size and
mtime, so what it trusts is what make and rsync trust: a file whose size and mtime are
unchanged is unchanged. Added, removed and modified files are found at start; only they are
validated again, and one line says so. A file that changes during a run is the backends'
one-line error naming it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from itertools import chain
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .dataset import DataError, Dataset, cache_root
from .listing import SPLITS, fingerprint_of, list_split, scan_key, stat_all
from .samples import Samples

MANIFEST_VERSION = 3  # 3: per-file sizes and mtimes kept (manifest.npz), so a change re-validates only what changed
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


def check_image(path: str) -> str | None:
    """Why `path` is not a usable image, or None. Reads ~1 KiB: header magic and trailer.

    Catches zero-byte files, non-images (whatever their extension) and truncated JPEG/PNG
    (no end-of-image marker / IEND chunk near the end), which every backend would otherwise
    hit mid-epoch as a worker crash or a silently grey image.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file (0 bytes)"
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if head.startswith(JPEG_MAGIC):
        # Some encoders append padding after EOI; search the last KiB rather than the last 2 bytes.
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head.startswith(PNG_MAGIC):
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    return "not a JPEG or PNG image"


def scan(root: Path, skip_bad: bool = False, progress: bool = True, name: str | None = None, log=None) -> Dataset:
    root = Path(root).expanduser()
    _check_layout(root)
    listing, stats = {}, {}
    for split in SPLITS:
        listing[split], stats[split] = stat_all(root / split, list_split(root / split))
    classes = _check_classes(root, listing)
    cache_dir = cache_root() / "manifests" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    manifest = _current_manifest(root, cache_dir, listing, stats, progress, log)
    fingerprint, bad = manifest["fingerprint"], manifest["bad"]
    manifest_path = cache_dir / "manifest.json"
    if bad and not skip_bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise DataError(f"{first['path']}: {first['why']}{more}; replace or delete it, or pass --skip-bad to leave bad files out (they are listed in {manifest_path})")
    index = {c: i for i, c in enumerate(classes)}
    splits = {split: _samples(listing[split], index, {b["path"] for b in bad}) for split in SPLITS}
    if skip_bad and bad:
        _atomic_write(cache_dir / "quarantine.txt", "".join(f"{b['path']}\t{b['why']}\n" for b in bad))
        for split in SPLITS:
            present = set(splits[split].labels.tolist())
            for c in dict.fromkeys(c for c, _, _ in listing[split]):
                if index[c] not in present:
                    raise DataError(f"{root / split / c}: every image in this class is bad; fix them or remove the folder")
    return Dataset(name or root.name, root, classes, splits, fingerprint, bad, cache_dir, skip_bad)


def _check_layout(root: Path) -> None:
    if not root.is_dir():
        raise DataError(f"{root}: no such directory; pass --data embedded or a folder holding train/ and val/")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"{root / split}: missing; an ImageFolder dataset needs {root}/train/<class>/* and {root}/val/<class>/*")


def _check_classes(root: Path, listing: dict) -> list[str]:
    """The train classes; one line for a split without classes, an empty class, a val class
    that train lacks."""
    per_split = {}
    for split in SPLITS:
        counts: dict = {}
        for c, _, names in listing[split]:
            counts[c] = counts.get(c, 0) + len(names)
        if not counts:
            raise DataError(f"{root / split}: no class folders; put each class's images in {root / split}/<class name>/")
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise DataError(f"{root / split / empty[0]}: empty class folder; add images or remove the folder")
        per_split[split] = list(counts)
    missing = [c for c in per_split["val"] if c not in per_split["train"]]
    if missing:
        raise DataError(f"{root / 'val' / missing[0]}: class not in train/ ({len(missing)} such); every val class needs a train folder of the same name")
    return per_split["train"]


def _files(listing, stats) -> dict:
    """Per-file identity for the manifest: path, size, mtime (arrays, listing order).

    The paths go straight into one array, a folder at a time: the CLI keeps freed heap memory
    (loaders/host.py: keep_host_memory), so a 1.3 M-item list or a concatenation of per-folder
    arrays (~60 MB each at ImageNet's size) would stay in the RSS for the whole run."""
    width = max((len(d.encode()) + 1 + _longest(names) for _, d, names in listing if names), default=1)
    paths = np.empty(sum(len(names) for _, _, names in listing), dtype=f"S{width}")
    k = 0
    for _, d, names in listing:
        paths[k:k + len(names)] = [f"{d}/{n}".encode() for n in names]
        k += len(names)
    return {"paths": paths, "sizes": stats[0], "mtimes": stats[1]}


def _longest(names: list[str]) -> int:
    """The longest name's length in UTF-8 bytes (at C speed where all are ASCII)."""
    return max(map(len, names)) if "".join(names).isascii() else max(len(n.encode()) for n in names)


def _samples(listing, index: dict, bad: set) -> Samples:
    samples = Samples.from_files([(d, names, index[c]) for c, d, names in listing])
    if not bad:
        return samples
    return samples.keep(np.array([p not in bad for p in samples.paths()], dtype=bool))


# -- the manifest ----------------------------------------------------------------------------
def _current_manifest(root: Path, cache_dir: Path, listing: dict, stats: dict, progress: bool, log) -> dict:
    """The manifest of the tree as listed and stat'ed now: the cached one if nothing changed,
    else one validated again where files changed."""
    manifest = _load_manifest(cache_dir)
    key = scan_key(root, listing, stats)
    if manifest is not None and manifest.get("scan_key") == key:  # the same names, sizes, mtimes: the same fingerprint
        return manifest
    fingerprint = fingerprint_of(root, listing, stats)
    if manifest is None or manifest["fingerprint"] != fingerprint:  # new or changed: per-file identities needed
        files = {split: _files(listing[split], stats[split]) for split in SPLITS}
        manifest = _revalidate(root, files, manifest and _load_files(cache_dir), fingerprint, progress, log)
        manifest["scan_key"] = key
        _save_manifest(cache_dir, manifest, files)
    else:  # a manifest written before the key: add it
        manifest["scan_key"] = key
        _atomic_write(cache_dir / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def _load_manifest(cache_dir: Path) -> dict | None:
    try:
        m = json.loads((cache_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return m if m.get("version") == MANIFEST_VERSION else None


def _load_files(cache_dir: Path) -> dict | None:
    """The last scan's per-file identities (only read when the tree changed)."""
    try:
        with np.load(cache_dir / "manifest.npz") as z:
            return {"bad": json.loads((cache_dir / "manifest.json").read_text())["bad"],
                    "files": {split: {k: z[f"{split}.{k}"] for k in ("paths", "sizes", "mtimes")} for split in SPLITS}}
    except (OSError, ValueError, KeyError):
        return None


def _save_manifest(cache_dir: Path, manifest: dict, files: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"manifest.tmp{os.getpid()}.npz"
    np.savez(tmp, **{f"{split}.{k}": v for split in SPLITS for k, v in files[split].items()})
    os.replace(tmp, cache_dir / "manifest.npz")
    _atomic_write(cache_dir / "manifest.json", json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=1))


def _changed(old: dict | None, files: dict) -> tuple[list, int, int]:
    """(paths to validate: added or modified, in parts, added count, removed count) against the last scan."""
    if old is None:  # everything: the arrays themselves (no list of 1.3 M paths at the peak, no copy)
        return [files[split]["paths"] for split in SPLITS], 0, 0
    todo, added, removed = [], 0, 0
    for split in SPLITS:
        new = files[split]
        before = old["files"][split]
        prev = {p: (s, m) for p, s, m in zip(before["paths"].tolist(), before["sizes"].tolist(), before["mtimes"].tolist())}
        now = list(zip(new["paths"].tolist(), new["sizes"].tolist(), new["mtimes"].tolist()))
        for p, s, m in now:
            seen = prev.get(p)
            if seen != (s, m):
                todo.append(p)
                added += seen is None
        removed += len(set(prev) - {p for p, _, _ in now})
    return [todo], added, removed


def _revalidate(root: Path, files: dict, old: dict | None, fingerprint: str, progress: bool, log) -> dict:
    """A manifest for the tree as it is now: validate what is new or changed since `old`."""
    parts, added, removed = _changed(old, files)
    n = sum(map(len, parts))
    if old is not None and log is not None:
        log(f"note: {root} changed since its last scan ({added} files added, {n - added} modified, {removed} removed): "
            f"validated {n} files again")
    t0 = time.perf_counter()
    bad = {}
    todo = chain.from_iterable(parts)
    for f in tqdm(todo, total=n, desc=f"validating {root.name}", unit="file", disable=not progress or n < 2000, leave=False):
        why = check_image(f)
        if why:
            bad[f.decode()] = why
    if old is not None:  # earlier verdicts on files that did not change stand
        present = {p.decode() for split in SPLITS for p in files[split]["paths"].tolist()}
        redone = {p.decode() for p in chain.from_iterable(parts)}
        for b in old["bad"]:
            if b["path"] in present and b["path"] not in redone:
                bad[b["path"]] = b["why"]
    return {
        "version": MANIFEST_VERSION,
        "root": str(root),
        "fingerprint": fingerprint,
        "counts": {s: len(files[s]["paths"]) for s in SPLITS},
        "bad": [{"path": p, "why": w} for p, w in sorted(bad.items())],
        "validated": n,
        "validate_s": round(time.perf_counter() - t0, 3),
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
