"""What every dataset source hands the loaders: a Dataset (classes, samples per split, a
fingerprint of the files, a cache folder), and DataError for bad input."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Bad input: the message is one line that names the file or folder and what to do."""


def undecodable(path, error: Exception) -> DataError:
    """A file that passed the scan (magic bytes, end marker) but not the decoder, or that went
    away after the scan."""
    if isinstance(error, FileNotFoundError):
        return DataError(f"{path}: gone since the scan (deleted or moved during the run); the next run rescans the tree")
    return DataError(f"{path}: cannot decode this image ({str(error).splitlines()[0]}); replace or delete it")


@dataclass
class Dataset:
    name: str
    root: Path
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(absolute path, label)]
    fingerprint: str
    quarantined: list[dict] = field(default_factory=list)
    cache_dir: Path | None = None  # where backends cache derived files (.beton, ...)
    skip_bad: bool = False  # --skip-bad: a file found bad at decode time is quarantined, not fatal (datasets/quarantine.py)

    def samples(self, split: str) -> list[tuple[str, int]]:
        return self.splits[split]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "root": str(self.root),
            "train": len(self.splits["train"]),
            "val": len(self.splits["val"]),
            "classes": self.num_classes,
            "fingerprint": self.fingerprint,
            "quarantined": len(self.quarantined),
        }


def cache_root() -> Path:
    return Path(os.environ.get("LOADERBENCH_DATA", Path.home() / ".cache" / "loaderbench"))


def publish(tmp: Path, dst: Path) -> Path:
    """Rename a tree built in `tmp` into place as `dst`: readers see a complete tree or none.
    When another process got there first, its tree is kept and ours is dropped."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, dst)
    except OSError:  # another process finished first: keep its tree
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
