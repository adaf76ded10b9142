"""A JPEG whose header and end marker are fine but whose body is corrupt passes the scan; at
decode time every backend stops with one line naming it, or with --skip-bad quarantines it
(counted, remembered by the manifest) and goes on."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from loaders import LoaderSpec, build
from loaders.datasets import DataError, check_image, scan
from loaders.decode_errors import decode_problem
from tests.helpers import collect, jpeg_bytes, make_imagefolder

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("dry_run_cuda_backends"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]  # numba finalizer (test_ffcv.py)
REPO = Path(__file__).resolve().parents[1]

# (registry name, options): each backend that decodes files here.
BACKENDS = {"torchvision": ("torchvision", {"pool": "threads"}), "torchvision-processes": ("torchvision", {"pool": "processes"}),
            "dali-cpu": ("dali-cpu", {}), "ffcv": ("ffcv", {"progress": False})}
SPEC = LoaderSpec(batch_size=4, res=32, val_res=32, workers=2, seed=0)
ONE_LINE = r"^\S*corrupt\.jpg: cannot decode this image \(.+\); replace or delete it$"


def corrupt_jpeg(kind: str = "random") -> bytes:
    """A JPEG with its header and end marker intact: 800 bytes of its entropy data replaced."""
    data = bytearray(jpeg_bytes(0, 3))
    mid = len(data) // 2
    data[mid:mid + 800] = bytes(800) if kind == "zeros" else bytes(random.Random(0).randrange(256) for _ in range(800))
    return bytes(data)


@pytest.fixture
def tree(tmp_path):
    root = make_imagefolder(tmp_path / "data", train=(3, 3), val=(3, 2), odd_formats=False)
    for split in ("train", "val"):
        (root / split / "apple" / "corrupt.jpg").write_bytes(corrupt_jpeg())
    return root


def _build(key, split, ds):
    name, options = BACKENDS[key]
    return build(name, split, ds, SPEC.with_(options=options))


@pytest.mark.parametrize("kind", ["random", "zeros"])
def test_it_passes_the_scan_and_fails_the_projects_decoder(tmp_path, kind):
    p = tmp_path / "corrupt.jpg"
    p.write_bytes(corrupt_jpeg(kind))
    assert check_image(str(p)) is None
    assert decode_problem(str(p)).startswith("cannot decode this image")


@pytest.mark.parametrize("key", list(BACKENDS))
@pytest.mark.parametrize("split", ["train", "val"])
def test_decode_stops_with_one_line_naming_the_file(key, split, tree):
    ds = scan(tree, progress=False)
    with pytest.raises(DataError, match=ONE_LINE):
        with _build(key, split, ds) as loader:
            collect(loader)


@pytest.mark.parametrize("key", list(BACKENDS))
def test_skip_bad_quarantines_counts_and_goes_on(key, tree):
    ds = scan(tree, skip_bad=True, progress=False)
    n = len(ds.samples("val"))
    with _build(key, "val", ds) as loader:
        x, y = collect(loader)
        facts = loader.facts()
    assert x.shape[0] == n - 1 and y.shape[0] == n - 1, "the bad file left out, every other one read"
    assert facts.get("quarantined_at_decode") == 1
    assert [Path(b["path"]).name for b in ds.quarantined] == ["corrupt.jpg"] and ds.describe()["quarantined"] == 1
    # The manifest remembers it: the next start stops at the scan (or leaves it out with --skip-bad).
    with pytest.raises(DataError, match=r"corrupt\.jpg: cannot decode this image .*--skip-bad"):
        scan(tree, progress=False)
    again = scan(tree, skip_bad=True, progress=False)
    assert len(again.samples("val")) == n - 1


@pytest.mark.parametrize("key", list(BACKENDS))
@pytest.mark.parametrize("split", ["train", "val"])
def test_skip_bad_leaves_it_out_of_every_pass_prefetched_too(key, split, tree, capfd):
    """Cross-epoch prefetch decodes the next pass's first batches while this one ends (DALI: its
    pipeline's decoder noise arrives during this pass): each pass still leaves the file out and
    no decoder message reaches the terminal."""
    ds = scan(tree, skip_bad=True, progress=False)
    n = len(ds.samples(split))
    with _build(key, split, ds) as loader:
        sizes = []
        for epoch in range(3):
            loader.set_epoch(epoch)
            sizes.append(collect(loader)[0].shape[0])
        facts = loader.facts()
    assert sizes == [n - 1] * 3
    assert facts.get("quarantined_at_decode") == 1
    assert "JPEG" not in capfd.readouterr().err


@pytest.mark.parametrize("loader", ["dali-cpu", "torchvision"])
def test_the_run_says_one_line_and_skip_bad_goes_on(loader, tree, tmp_path):
    """End to end: without --skip-bad one line on stderr names the file (no libjpeg noise, no
    traceback); with it the run measures and its record counts the file."""
    import json
    import os

    env = {**os.environ, "LOADERBENCH_DATA": str(tmp_path / "cache")}
    out = tmp_path / "records.jsonl"
    run = [sys.executable, "-m", "bench.run", "--mode", "loader", "--loader", loader, "--data", str(tree), "--no-progress",
           "--steps", "3", "--batch-size", "4", "--res", "32", "--workers", "2", "--out", str(out)]
    p = subprocess.run(run, cwd=REPO, capture_output=True, text=True, env=env, timeout=150)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert [line for line in lines if "corrupt.jpg" in line] == [line for line in lines if line.startswith("error:")], p.stderr
    assert len([line for line in lines if "corrupt.jpg" in line]) == 1, p.stderr
    assert not [line for line in lines if "JPEG" in line and "corrupt.jpg" not in line], p.stderr  # no decoder noise
    p = subprocess.run(run + ["--skip-bad"], cwd=REPO, capture_output=True, text=True, env=env, timeout=150)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["status"] == "ok" and record["dataset"]["quarantined"] == 1, record
