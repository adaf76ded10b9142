"""Scan and validate an ImageNet-layout ImageFolder tree, with a manifest cached beside the data
so that a second run on an unchanged tree costs one `stat` per file.

Samples come in ImageFolder order (sorted classes, sorted files, as
torchvision.datasets.ImageFolder lists them)."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from tqdm import tqdm

from .dataset import DataError, Dataset, cache_root

MANIFEST_VERSION = 2
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
SPLITS = ("train", "val")


# -- scanning ------------------------------------------------------------------------------
def _list_split(split_dir: Path) -> dict[str, list[os.DirEntry]]:
    """class name -> file entries, both sorted like torchvision's ImageFolder (hidden skipped)."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    out = {}
    for c in classes:
        files = []
        for dirpath, dirnames, fnames in sorted(os.walk(split_dir / c, followlinks=True)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            files += [os.path.join(dirpath, f) for f in sorted(fnames) if not f.startswith(".")]
        out[c] = files
    return out


def _tree_fingerprint(listing: dict[str, dict[str, list[str]]], root: Path) -> str:
    """Hash of every file's relative path, size and mtime: cheap, and changes with the data."""
    h = hashlib.sha1()
    for split in SPLITS:
        for c, files in listing[split].items():
            for f in files:
                st = os.stat(f)
                h.update(f"{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if not files:
                h.update(f"{split}/{c}/<empty>\n".encode())
    return h.hexdigest()[:16]


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


def scan(root: Path, skip_bad: bool = False, progress: bool = True, name: str | None = None) -> Dataset:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such directory; pass --data embedded or a folder holding train/ and val/")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"{root / split}: missing; an ImageFolder dataset needs {root}/train/<class>/* and {root}/val/<class>/*")
    listing = {split: _list_split(root / split) for split in SPLITS}
    for split in SPLITS:
        if not listing[split]:
            raise DataError(f"{root / split}: no class folders; put each class's images in {root / split}/<class name>/")
        for c, files in listing[split].items():
            if not files:
                raise DataError(f"{root / split / c}: empty class folder; add images or remove the folder")
    classes = list(listing["train"])
    missing = [c for c in listing["val"] if c not in listing["train"]]
    if missing:
        raise DataError(f"{root / 'val' / missing[0]}: class not in train/ ({len(missing)} such); every val class needs a train folder of the same name")

    fingerprint = _tree_fingerprint(listing, root)
    cache_dir = cache_root() / "manifests" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    manifest_path = cache_dir / "manifest.json"
    manifest = _load_manifest(manifest_path, fingerprint)
    if manifest is None:
        manifest = _validate(root, listing, fingerprint, progress)
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest_path, json.dumps(manifest, indent=1))
    bad = manifest["bad"]
    if bad and not skip_bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise DataError(f"{first['path']}: {first['why']}{more}; replace or delete it, or pass --skip-bad to leave bad files out (they are listed in {manifest_path})")
    bad_paths = {b["path"] for b in bad}
    index = {c: i for i, c in enumerate(classes)}
    splits = {
        split: [(f, index[c]) for c, files in listing[split].items() for f in files if f not in bad_paths]
        for split in SPLITS
    }
    if skip_bad and bad:
        _atomic_write(cache_dir / "quarantine.txt", "".join(f"{b['path']}\t{b['why']}\n" for b in bad))
        for split in SPLITS:
            labels = {lab for _, lab in splits[split]}
            for c in listing[split]:
                if index[c] not in labels:
                    raise DataError(f"{root / split / c}: every image in this class is bad; fix them or remove the folder")
    return Dataset(name or root.name, root, classes, splits, fingerprint, bad, cache_dir)


def _load_manifest(path: Path, fingerprint: str) -> dict | None:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = m.get("version") == MANIFEST_VERSION and m.get("fingerprint") == fingerprint
    return m if ok else None


def _validate(root: Path, listing, fingerprint: str, progress: bool) -> dict:
    files = [f for split in SPLITS for fs in listing[split].values() for f in fs]
    t0 = time.perf_counter()
    bad = []
    for f in tqdm(files, desc=f"validating {root.name}", unit="file", disable=not progress or len(files) < 2000, leave=False):
        why = check_image(f)
        if why:
            bad.append({"path": f, "why": why})
    return {
        "version": MANIFEST_VERSION,
        "root": str(root),
        "fingerprint": fingerprint,
        "counts": {s: sum(len(v) for v in listing[s].values()) for s in SPLITS},
        "classes": list(listing["train"]),
        "bad": bad,
        "validate_s": round(time.perf_counter() - t0, 3),
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
