"""List and stat an ImageFolder tree: what every start does before it can trust the manifest.

ImageNet's 1.33 M files, measured on the 2-core machine (cached start, issue #16): listing
~1 s, one stat per file ~1.5 s in C (loaders/_native.c: stat_names) or ~3.5 s in Python.
"""
from __future__ import annotations

import bisect
import hashlib
import os
import stat
from pathlib import Path

import numpy as np

try:  # optional (loaders/_native.c, built by `pip install -e .`); the Python loop without it
    from .. import _native
except ImportError:
    _native = None

_stat_names = getattr(_native, "stat_names", None)  # an extension built before stat_names lacks it
SPLITS = ("train", "val")


def list_split(split_dir: Path) -> list[tuple[str, str, list[str]]]:
    """[(class, directory, sorted file names)] like torchvision's ImageFolder: sorted classes,
    then each class's directories in os.walk order, sorted; hidden entries skipped."""
    with os.scandir(split_dir) as it:
        classes = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    return [entry for c in classes for entry in _list_class(split_dir, c)]


def _visible(names: list[str]) -> list[str]:
    """`names` sorted, hidden ones left out. Sorted, the names starting with "." are one run,
    from "." up to "/" (the next code point): cut at C speed, not tested one by one."""
    names.sort()
    del names[bisect.bisect_left(names, "."):bisect.bisect_left(names, "/")]
    return names


def _list_class(split_dir: Path, c: str, walk: bool = False) -> list[tuple[str, str, list[str]]]:
    d = f"{split_dir}/{c}"  # a str: the 2,000 Paths of ImageNet's classes took 0.1 s to build and format
    # A folder's link count is 2 + its subfolders: 2 means a flat class folder (ImageNet's
    # shape), listed by names alone, twice as fast as os.walk's per-entry checks. A symlink to
    # a folder among the names is seen by _stat, which then asks for the walk.
    if not walk and os.stat(d).st_nlink == 2:
        return [(c, d, _visible(os.listdir(d)))]
    out = []
    for dirpath, dirnames, fnames in sorted(os.walk(d, followlinks=True)):  # the class folder itself first
        dirnames[:] = [x for x in dirnames if not x.startswith(".")]
        out.append((c, dirpath, _visible(fnames)))
    return out


class _Folder(Exception):
    """A listed name is a folder (a symlink to one): its class must be walked."""


def stat_all(split_dir: Path, listing: list) -> tuple[list, tuple[np.ndarray, np.ndarray]]:
    """(listing, its stats), re-walking the classes where a listed name turned out a folder."""
    while True:
        try:
            return listing, _stat(listing)
        except _Folder as e:
            c = str(e)
            listing = [x for x in listing if x[0] != c]
            at = next((i for i, x in enumerate(listing) if x[0] > c), len(listing))
            listing[at:at] = _list_class(split_dir, c, walk=True)


def _stat(listing, native=True) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, mtimes in ns) of every file, in listing order: one stat each (following
    symlinks, as os.stat), written straight into arrays (lists of 1.3 M Python ints would cost
    ~100 MB at the peak). A missing file raises os.stat's error, naming it."""
    n = sum(len(names) for _, _, names in listing)
    sizes, mtimes = np.empty(n, np.int64), np.empty(n, np.int64)
    k = 0
    for c, d, names in listing:
        m = len(names)
        if native and _stat_names is not None:  # the GIL released, one fstatat per name
            folder = _stat_names(d, names, sizes[k:k + m], mtimes[k:k + m])
        else:
            folder = _stat_python(d, names, sizes[k:k + m], mtimes[k:k + m])
        if folder >= 0:
            raise _Folder(c)
        k += m
    return sizes, mtimes


def _stat_python(d: str, names: list[str], sizes: np.ndarray, mtimes: np.ndarray) -> int:
    """stat_names' contract in Python: fills sizes and mtimes; the index of the first folder, or -1."""
    for i, name in enumerate(names):
        st = os.stat(f"{d}/{name}")
        if stat.S_ISDIR(st.st_mode):
            return i
        sizes[i], mtimes[i] = st.st_size, st.st_mtime_ns
    return -1


def fingerprint_of(root: Path, listing: dict, stats: dict) -> str:
    """Hash of every file's relative path, size and mtime: cheap, and changes with the data.
    (The formula of manifest versions 1-2, so that .beton caches and records keep their key.)"""
    h = hashlib.sha1()
    for split in SPLITS:
        sizes, mtimes = stats[split]
        k = 0
        for _, d, names in listing[split]:
            rel, m = os.path.relpath(d, root), len(names)
            lines = zip(names, sizes[k:k + m].tolist(), mtimes[k:k + m].tolist())
            h.update("".join(f"{rel}/{n}\0{s}\0{t}\n" for n, s, t in lines).encode())
            k += m
    return h.hexdigest()[:16]


def scan_key(root: Path, listing: dict, stats: dict) -> str:
    """A hash of exactly what fingerprint_of reads (each directory's relative path, names, sizes,
    mtimes, in order), in a form hashed at C speed (~0.1 s for ImageNet, against ~1 s). Equal
    keys mean equal inputs, hence the manifest's fingerprint stands: the encoding is
    unambiguous (counts first; a name holds neither NUL nor "/"; the arrays are 8 bytes a file)."""
    h = hashlib.sha1(b"scan-key 1\0")
    for split in SPLITS:
        sizes, mtimes = stats[split]
        h.update(f"{split}\0{len(listing[split])}\0".encode())
        k = 0
        for _, d, names in listing[split]:
            m = len(names)
            h.update(f"{os.path.relpath(d, root)}\0{m}\0".encode())
            h.update(("\0".join(names) + "\0").encode())
            h.update(sizes[k:k + m].tobytes())
            h.update(mtimes[k:k + m].tobytes())
            k += m
    return h.hexdigest()
