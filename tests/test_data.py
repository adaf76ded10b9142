"""Dataset scanning, validation and the embedded dataset."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loaders.datasets import DataError, check_image, scan
from loaders.datasets.generated import generate
from tests.helpers import make_imagefolder

REPO = Path(__file__).resolve().parent.parent


def test_imagefolder_order_matches_torchvision(tiny_root):
    from torchvision.datasets import ImageFolder

    ds = scan(tiny_root, progress=False)
    for split in ("train", "val"):
        ref = ImageFolder(str(tiny_root / split))
        assert ds.classes == ref.classes
        assert [(os.path.abspath(p), y) for p, y in ds.samples(split)] == [(os.path.abspath(p), y) for p, y in ref.samples]


def test_manifest_is_cached_and_invalidated(tmp_path):
    root = make_imagefolder(tmp_path / "d", odd_formats=False)
    first = scan(root, progress=False)
    manifest = first.cache_dir / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = scan(root, progress=False)
    assert again.fingerprint == first.fingerprint and manifest.stat().st_mtime_ns == stamp
    (root / "train" / "apple" / "img_000.jpg").write_bytes((root / "train" / "apple" / "img_001.jpg").read_bytes() + b"\0")
    changed = scan(root, progress=False)
    assert changed.fingerprint != first.fingerprint


def _bad(tmp_path, name):
    root = make_imagefolder(tmp_path / name, train=(3, 3), val=(1, 1), odd_formats=False)
    return root


BAD_CASES = {
    "no_train": (lambda r: __import__("shutil").rmtree(r / "train"), "train: missing"),
    "no_val": (lambda r: __import__("shutil").rmtree(r / "val"), "val: missing"),
    "no_classes": (lambda r: [__import__("shutil").rmtree(p) for p in (r / "train").iterdir()], "no class folders"),
    "empty_class": (lambda r: (r / "train" / "zebra").mkdir(), "empty class folder"),
    "val_class_not_in_train": (lambda r: (r / "val" / "zebra").mkdir() or (r / "val" / "zebra" / "a.jpg").write_bytes((r / "val" / "apple" / "img_000.jpg").read_bytes()), "class not in train"),
    "zero_byte": (lambda r: (r / "train" / "apple" / "zero.jpg").write_bytes(b""), "empty file"),
    "truncated": (lambda r: (r / "train" / "apple" / "cut.jpg").write_bytes((r / "train" / "apple" / "img_000.jpg").read_bytes()[:3000]), "truncated JPEG"),
    "not_an_image": (lambda r: (r / "train" / "apple" / "notes.jpg").write_text("hello, I am text"), "not a JPEG or PNG"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gives_one_line_error(tmp_path, case):
    mutate, expected = BAD_CASES[case]
    root = _bad(tmp_path, case)
    mutate(root)
    with pytest.raises(DataError) as e:
        scan(root, progress=False)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg
    assert str(root) in msg  # names the file or folder


def test_cli_bad_input_is_one_line_no_traceback(tmp_path):
    root = _bad(tmp_path, "cli")
    (root / "train" / "apple" / "zero.jpg").write_bytes(b"")
    p = subprocess.run([sys.executable, "-m", "bench.run", "--mode", "loader", "--data", str(root), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ})
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "zero.jpg" in err[0] and "--skip-bad" in err[0], p.stderr
    assert "Traceback" not in p.stderr


def test_skip_bad_quarantines_and_counts(tmp_path):
    root = _bad(tmp_path, "skip")
    (root / "train" / "apple" / "zero.jpg").write_bytes(b"")
    (root / "train" / "apple" / "cut.jpg").write_bytes((root / "train" / "apple" / "img_000.jpg").read_bytes()[:2000])
    ds = scan(root, skip_bad=True, progress=False)
    assert len(ds.quarantined) == 2 and ds.describe()["quarantined"] == 2
    assert len(ds.samples("train")) == 6
    listed = (ds.cache_dir / "quarantine.txt").read_text()
    assert "zero.jpg" in listed and "cut.jpg" in listed


def test_check_image_accepts_valid_formats(tiny_root):
    files = [p for p in tiny_root.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".jpg", ".png"}
    assert all(check_image(str(p)) is None for p in files)


def test_embedded_is_deterministic_and_imagenet_like(tmp_path):
    a = generate(tmp_path / "a", per_class=4, progress=False)
    b = generate(tmp_path / "b", per_class=4, progress=False)
    ma, mb = json.loads((a / "MANIFEST.json").read_text()), json.loads((b / "MANIFEST.json").read_text())
    assert ma["sha1"] == mb["sha1"], "same seed -> byte-identical files"
    ds = scan(a, progress=False)
    assert ds.num_classes == 10 and len(ds.samples("train")) == 40 and len(ds.samples("val")) == 10
    from PIL import Image

    for path, _ in ds.samples("train"):
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert 200 <= min(im.size) <= 500 and 0.74 <= max(im.size) / min(im.size) <= 16 / 9 + 0.01
        assert 8_000 < os.path.getsize(path) < 200_000
    digest = hashlib.sha1(Path(ds.samples("train")[0][0]).read_bytes()).hexdigest()
    assert digest == hashlib.sha1(Path(scan(b, progress=False).samples("train")[0][0]).read_bytes()).hexdigest()


def test_nested_and_symlinked_class_folders_are_listed_like_imagefolder(tmp_path):
    from torchvision.datasets import ImageFolder

    root = make_imagefolder(tmp_path / "n", train=(3, 3), val=(1, 1), odd_formats=False)
    sub = root / "train" / "apple" / "more"
    sub.mkdir()
    (sub / "x.jpg").write_bytes((root / "train" / "apple" / "img_000.jpg").read_bytes())
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "y.jpg").write_bytes((root / "train" / "apple" / "img_001.jpg").read_bytes())
    os.symlink(other, root / "train" / "big cat" / "linked")
    ds = scan(root, progress=False)
    ref = ImageFolder(str(root / "train"))
    assert [(os.path.abspath(p), y) for p, y in ds.samples("train")] == [(os.path.abspath(p), y) for p, y in ref.samples]
    assert len(ds.samples("train")) == 8


@pytest.mark.parametrize("change", ["deleted", "truncated", "replaced", "added"])
def test_a_tree_changed_after_its_scan_is_caught_at_start(tmp_path, change):
    """The manifest's stat check finds the change; only the changed files are validated again,
    with one line saying so; a truncated file is then a bad file like any other."""
    root = make_imagefolder(tmp_path / "c", train=(4, 4), val=(2, 2), odd_formats=False)
    first = scan(root, progress=False)
    target = root / "train" / "apple" / "img_001.jpg"
    data = target.read_bytes()
    if change == "deleted":
        target.unlink()
    elif change == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif change == "replaced":
        target.write_bytes((root / "train" / "apple" / "img_002.jpg").read_bytes())
    else:
        (root / "train" / "apple" / "img_new.jpg").write_bytes(data)
    lines = []
    if change == "truncated":
        with pytest.raises(DataError, match=r"img_001\.jpg: truncated JPEG"):
            scan(root, progress=False, log=lines.append)
    else:
        again = scan(root, progress=False, log=lines.append)
        assert again.fingerprint != first.fingerprint
        assert len(again.samples("train")) == 8 + {"deleted": -1, "replaced": 0, "added": 1}[change]
    (line,) = lines
    counts = {"deleted": "0 files added, 0 modified, 1 removed", "truncated": "0 files added, 1 modified, 0 removed",
              "replaced": "0 files added, 1 modified, 0 removed", "added": "1 files added, 0 modified, 0 removed"}[change]
    assert line.startswith(f"note: {root} changed since its last scan ({counts})")
    assert "validated 0 files again" in line if change == "deleted" else "validated 1 files again" in line


def test_an_unchanged_tree_validates_nothing_again(tmp_path):
    root = make_imagefolder(tmp_path / "u", train=(3, 3), val=(1, 1), odd_formats=False)
    first = scan(root, progress=False)
    lines = []
    again = scan(root, progress=False, log=lines.append)
    assert lines == [] and again.fingerprint == first.fingerprint
    assert list(again.samples("train")) == list(first.samples("train"))


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_file_deleted_during_a_run_is_one_line_naming_it(tmp_path, pool):
    from loaders import LoaderSpec, build

    root = make_imagefolder(tmp_path / "d", train=(3, 3), val=(2, 2), odd_formats=False)
    ds = scan(root, progress=False)
    gone = ds.samples("val")[1][0]
    os.unlink(gone)
    with build("torchvision", "val", ds, LoaderSpec(batch_size=2, res=32, val_res=32, workers=2, options={"pool": pool})) as loader:
        with pytest.raises(DataError) as e:
            [x for x, _ in loader]
    assert str(e.value) == f"{gone}: gone since the scan (deleted or moved during the run); the next run rescans the tree"
