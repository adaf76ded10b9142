"""The start-up scan's fast paths (issue #16): the C stat loop gives os.stat's numbers and
errors, the manifest's scan key stands in for the fingerprint only while nothing changed, hidden
names are still left out, and non-ASCII names survive the numpy fast path. `make venv` builds
loaders/_native here, so the C path must import: no skip (imported in its tests, so that the
rest collects where it is not built)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from loaders.datasets import imagefolder, listing, scan
from loaders.datasets.samples import Samples
from tests.helpers import make_imagefolder


def _native():
    from loaders import _native

    assert listing._stat_names is _native.stat_names  # the scan uses it
    return _native


def _both_stats(lst):
    _native()
    return listing._stat(lst, native=True), listing._stat(lst, native=False)


def test_native_stat_gives_os_stats_numbers_through_symlinks(tmp_path):
    root = make_imagefolder(tmp_path / "t", train=(3, 2), val=(1, 1), odd_formats=False)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((root / "train" / "apple" / "img_000.jpg").read_bytes() + b"tail")
    os.symlink(outside, root / "train" / "apple" / "linked.jpg")
    os.utime(root / "train" / "apple" / "img_001.jpg", ns=(1, -1_500_000_001))  # before 1970, odd ns
    lst = listing.list_split(root / "train")
    (s1, m1), (s2, m2) = _both_stats(lst)
    assert s1.tolist() == s2.tolist() and m1.tolist() == m2.tolist()
    names = [n for _, _, ns in lst for n in ns]
    assert s1[names.index("linked.jpg")] == outside.stat().st_size  # the target's, as os.stat
    assert -1_500_000_001 in m1.tolist()
    assert _native().stat_names(str(tmp_path / "gone"), [], np.empty(0, np.int64), np.empty(0, np.int64)) == -1  # as the loop


def test_native_stat_reports_the_first_folder_and_refuses_bad_buffers(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    for name in ("a.jpg", "b", "c.jpg"):
        (d / name).mkdir() if name == "b" else (d / name).write_bytes(b"x" * 3)
    sizes, mtimes = np.zeros(3, np.int64), np.zeros(3, np.int64)
    assert _native().stat_names(str(d), ["a.jpg", "b", "c.jpg"], sizes, mtimes) == 1
    assert listing._stat_python(str(d), ["a.jpg", "b", "c.jpg"], np.zeros(3, np.int64), np.zeros(3, np.int64)) == 1
    assert sizes[0] == 3
    os.close(os.open(os.path.join(os.fsencode(d), b"caf\xe9.jpg"), os.O_CREAT | os.O_WRONLY))  # not UTF-8
    odd = [os.fsdecode(b"caf\xe9.jpg"), "c.jpg"]  # as os.listdir gives it: surrogate-escaped
    pair = [np.full(2, 7, np.int64), np.full(2, 7, np.int64)]
    assert _native().stat_names(str(d), odd, *pair) == listing._stat_python(str(d), odd, sizes[:2], mtimes[:2]) == -1
    assert pair[0].tolist() == sizes[:2].tolist() == [0, 3] and pair[1].tolist() == mtimes[:2].tolist()
    with pytest.raises(ValueError, match="len\\(names\\) int64"):
        _native().stat_names(str(d), ["a.jpg"], np.zeros(2, np.int64), np.zeros(2, np.int64))


@pytest.mark.parametrize("where", ["file", "folder"])
def test_native_stat_raises_os_stats_error_naming_the_file(tmp_path, where):
    d = tmp_path / "c"
    d.mkdir()
    (d / "here.jpg").write_bytes(b"x")
    folder = str(d if where == "file" else tmp_path / "gone")
    names = ["here.jpg", "missing.jpg"] if where == "file" else ["here.jpg"]
    errors = []
    for stat_names in (_native().stat_names, listing._stat_python):
        with pytest.raises(OSError) as e:
            stat_names(folder, names, np.zeros(len(names), np.int64), np.zeros(len(names), np.int64))
        errors.append((type(e.value), e.value.errno, e.value.filename, str(e.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] is FileNotFoundError and errors[0][2] == f"{folder}/{names[-1]}"


def test_hidden_names_are_left_out_and_the_rest_sorted(tmp_path):
    names = ["b.jpg", ".DS_Store", "-dash.jpg", "..x", "0.jpg", ".a", "a.jpg", "~z.jpg", "Z.jpg"]
    assert listing._visible(list(names)) == sorted(n for n in names if not n.startswith("."))
    root = make_imagefolder(tmp_path / "h", train=(2, 2), val=(1, 1), odd_formats=False)
    (root / "train" / "apple" / ".hidden.jpg").write_bytes(b"not an image")  # would be a bad file if listed
    (root / "train" / ".trash").mkdir()
    (root / "train" / ".trash" / "x.jpg").write_bytes(b"not an image")
    ds = scan(root, progress=False)
    assert ds.classes == ["apple", "big cat"] and len(ds.samples("train")) == 4
    assert not any("/." in p for p, _ in ds.samples("train"))


def test_non_ascii_names_take_the_encoding_path_with_the_same_result(tmp_path):
    files = [("/d", ["a.jpg", "ñandú.jpg", "z.jpg"], 0), ("/e", ["b.jpg"], 1)]
    s = Samples.from_files(files)
    assert s.names.tolist() == [n.encode() for _, ns, _ in files for n in ns] and s.names.dtype.kind == "S"
    assert s.path(1) == "/d/ñandú.jpg" and s[3] == ("/e/b.jpg", 1)
    assert len(Samples.from_files([])) == 0 and Samples.from_files([]).names.dtype.kind == "S"
    root = make_imagefolder(tmp_path / "u", train=(2, 2, 2), val=(1, 1, 1))  # a unicode class, odd formats
    (root / "train" / "apple" / "çà.jpg").write_bytes((root / "train" / "apple" / "img_000.jpg").read_bytes())
    paths = [p for p, _ in scan(root, progress=False).samples("train")]
    assert str(root / "train" / "apple" / "çà.jpg") in paths and all(os.path.exists(p) for p in paths)


# -- the manifest's scan key ------------------------------------------------------------------
def _manifest(ds) -> dict:
    return json.loads((ds.cache_dir / "manifest.json").read_text())


def _formula_calls(monkeypatch) -> list:
    calls = []
    real = imagefolder.fingerprint_of
    monkeypatch.setattr(imagefolder, "fingerprint_of", lambda *a: calls.append(1) or real(*a))
    return calls


def test_an_unchanged_tree_takes_the_manifests_fingerprint(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "k", train=(3, 3), val=(1, 1), odd_formats=False)
    first = scan(root, progress=False)
    assert len(_manifest(first)["scan_key"]) == 40
    calls = _formula_calls(monkeypatch)
    again = scan(root, progress=False)
    assert calls == [] and again.fingerprint == first.fingerprint


CHANGES = {
    "size": lambda f: f.write_bytes(f.read_bytes() + b"\0"),
    "mtime": lambda f: os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1)),  # 1 ns, same bytes
    "added": lambda f: (f.parent / "img_new.jpg").write_bytes(f.read_bytes()),
    "removed": lambda f: f.unlink(),
    "renamed": lambda f: f.rename(f.parent / "img_9.jpg"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_tree_computes_the_fingerprint_again(tmp_path, monkeypatch, change):
    root = make_imagefolder(tmp_path / "k", train=(3, 3), val=(2, 2), odd_formats=False)
    first = scan(root, progress=False)
    key = _manifest(first)["scan_key"]
    CHANGES[change](root / "val" / "big cat" / "img_001.jpg")
    calls = _formula_calls(monkeypatch)
    lines = []
    again = scan(root, progress=False, log=lines.append)
    assert calls == [1] and again.fingerprint != first.fingerprint and len(lines) == 1
    assert _manifest(again)["scan_key"] != key
    assert again.fingerprint == listing.fingerprint_of(root, *_listed(root))  # the formula's, as before
    third = scan(root, progress=False)
    assert calls == [1] and third.fingerprint == again.fingerprint


def _listed(root: Path):
    lst, stats = {}, {}
    for split in listing.SPLITS:
        lst[split], stats[split] = listing.stat_all(root / split, listing.list_split(root / split))
    return lst, stats


def test_a_manifest_without_the_key_is_trusted_by_fingerprint_and_given_the_key(tmp_path, monkeypatch):
    root = make_imagefolder(tmp_path / "o", train=(3, 3), val=(1, 1), odd_formats=False)
    first = scan(root, progress=False)
    path = first.cache_dir / "manifest.json"
    old = _manifest(first)
    key = old.pop("scan_key")
    path.write_text(json.dumps(old))
    calls = _formula_calls(monkeypatch)
    lines = []
    again = scan(root, progress=False, log=lines.append)
    assert calls == [1] and lines == [] and again.fingerprint == first.fingerprint
    assert _manifest(again) == {**old, "scan_key": key}  # nothing validated again; the key added
