"""ImageFolder split -> FFCV `.beton`, written once and cached beside the dataset manifest.

The cache key is the dataset fingerprint, the split's exact sample list (so `--skip-bad`
changes it too) and the write policy (`write_mode`, `max_resolution`, `jpeg_quality`,
`compress_probability`): changed data or a changed parameter rebuilds, an unchanged one never
does. A sidecar JSON beside each `.beton` records how it was written (policy, conversion
seconds, bytes), so a cache hit still reports the original conversion cost.

The writing itself, and the two FFCV writer traps it handles, are in loaders/ffcv_writer.py.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from .datasets.quarantine import leave_out, skip_bad
from .ffcv_writer import MAX_SIDE, ConversionError, UndecodableFiles, convert

FORMAT = 2  # bump when the way we write changes (2: image modes by loaders/image_modes.py)

# One write policy per dataset: these defaults keep val within 4 levels (0-255) of torchvision
# on this project's data (see tests/test_ffcv.py::test_val_pixel_parity) at ~1/6 of raw size.
WRITE_DEFAULTS = {
    "write_mode": "jpg",  # raw | jpg | smart | proportion (FFCV's RGBImageField modes)
    "max_resolution": 512,  # longest side stored; None keeps full size (page sized to fit)
    "jpeg_quality": 90,
    "compress_probability": 0.5,  # only for write_mode=proportion
}


def write_params(options: dict | None) -> dict:
    """The write policy from spec.options (unknown keys ignored), validated."""
    options = options or {}
    p = {k: options.get(k, v) for k, v in WRITE_DEFAULTS.items()}
    if p["write_mode"] not in ("raw", "jpg", "smart", "proportion"):
        raise ValueError(f"write_mode must be raw, jpg, smart or proportion, not {p['write_mode']!r}")
    if p["max_resolution"] is not None:
        p["max_resolution"] = int(p["max_resolution"])
        if not 1 <= p["max_resolution"] <= MAX_SIDE:
            raise ValueError(f"max_resolution must be in 1..{MAX_SIDE} or None")
    p["jpeg_quality"] = int(p["jpeg_quality"])
    if not 1 <= p["jpeg_quality"] <= 100:
        raise ValueError("jpeg_quality must be in 1..100")
    if p["write_mode"] == "proportion":
        p["compress_probability"] = float(p["compress_probability"] if p["compress_probability"] is not None else 0.5)
    else:
        p["compress_probability"] = None  # unused: kept out of the cache key
    return p


def cache_key(dataset, split: str, params: dict) -> str:
    h = hashlib.sha1()
    h.update(json.dumps({"format": FORMAT, "fingerprint": dataset.fingerprint, "split": split, "params": params}, sort_keys=True).encode())
    for path, label in dataset.samples(split):
        h.update(f"{path}\0{label}\n".encode())
    return h.hexdigest()[:16]


def beton_path(dataset, split: str, params: dict) -> Path:
    if dataset.cache_dir is None:
        raise ValueError("dataset has no cache_dir for the .beton (scan it with loaders.datasets.scan/resolve)")
    return Path(dataset.cache_dir) / f"ffcv-{split}-{cache_key(dataset, split, params)}.beton"


def ensure_beton(dataset, split: str, params: dict, progress: bool = True, workers: int | None = None) -> tuple[Path, dict, bool]:
    """(path, sidecar meta, built_now). Converts unless a matching .beton is cached.

    The conversion is where FFCV decodes the original files: one that cannot be decoded stops
    it with one line naming it (UndecodableFiles, a DataError), or with --skip-bad is
    quarantined and left out of the split, and the split converted again without it (meta
    then says how many under "quarantined_now").
    """
    left_out = 0
    while True:
        try:
            path, meta, built = _ensure(dataset, split, params, progress, workers)
        except UndecodableFiles as e:
            if not skip_bad(dataset) or min(i for i, _ in e.bad) < 0:
                raise
            left_out += leave_out(dataset, split, e.bad)
            continue
        return path, ({**meta, "quarantined_now": left_out} if left_out else meta), built


def _ensure(dataset, split: str, params: dict, progress: bool, workers: int | None) -> tuple[Path, dict, bool]:
    """ensure_beton's one attempt.

    A lock file serialises concurrent builders (e.g. DDP ranks): the first converts, the others
    wait and then hit the cache.
    """
    path = beton_path(dataset, split, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_path = path.with_suffix(".json")
    with open(path.parent / f"ffcv-{split}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta = _load_meta(meta_path, path)
        if meta is not None:
            return path, meta, False
        _drop_stale(path.parent, split, dataset.fingerprint)
        samples = dataset.samples(split)
        if progress:
            print(f"ffcv: converting {dataset.name}/{split} ({len(samples)} images, {params}) -> {path}", file=sys.stderr)
        t0 = time.perf_counter()
        page = convert(samples, path, params, workers=workers, progress=progress)
        meta = {
            "format": FORMAT,
            "fingerprint": dataset.fingerprint,
            "split": split,
            "samples": len(samples),
            "params": params,
            "page_size": page,
            "convert_s": round(time.perf_counter() - t0, 3),
            "bytes": path.stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = meta_path.with_suffix(f".json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, meta_path)
        return path, meta, True


def _load_meta(meta_path: Path, path: Path) -> dict | None:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or not path.exists() or path.stat().st_size != meta.get("bytes"):
        return None
    return meta


def _drop_stale(folder: Path, split: str, fingerprint: str) -> None:
    """Remove this split's .beton files written from other data: they can never hit again.
    (Files for the same data under other write parameters are kept.)"""
    for meta_path in folder.glob(f"ffcv-{split}-*.json"):
        try:
            old = json.loads(meta_path.read_text()).get("fingerprint")
        except (OSError, ValueError):
            continue
        if old != fingerprint:
            meta_path.with_suffix(".beton").unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)


__all__ = ["ConversionError", "WRITE_DEFAULTS", "beton_path", "cache_key", "ensure_beton", "write_params"]
