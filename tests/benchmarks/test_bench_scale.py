"""Start-up at scale: scanning an ImageNet-shaped tree of 100,000 train files in 1,000 classes
(tiny JPEGs, hard links: the bookkeeping is what is measured), first start (list, stat,
validate, write the manifest) and second start (list, stat, compare with the manifest).

    pytest tests/benchmarks/test_bench_scale.py --benchmark-only

Under the normal test run each case runs once on a tenth of the tree.
"""
from __future__ import annotations

import os
import shutil
import statistics
import time

import pytest
from PIL import Image

from tests.benchmarks.conftest import record


@pytest.fixture(scope="module")
def tree(request, tmp_path_factory):
    session = getattr(request.config, "_benchmarksession", None)
    n = 10_000 if session is None or session.disabled else 100_000
    root = tmp_path_factory.mktemp("imagenet-shaped")
    src = root.parent / f"{root.name}-src"
    src.mkdir()
    for split, count in (("train", n), ("val", n // 25)):
        for c in range(1000):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True)
            one = src / f"{split}-{c}.jpg"
            if not one.exists():
                Image.new("RGB", (40, 32), (c % 256, 90, 30)).save(one, "JPEG")
            for i in range(max(1, count // 1000)):
                os.link(one, d / f"n{c:08d}_{i}.JPEG")  # ext4: 65,000 links per inode at most
    yield root, n
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("start", ["first", "second"])
def test_bench_scan(benchmark, tree, start, tmp_path, monkeypatch):
    from loaders.datasets import scan

    root, n = tree
    monkeypatch.setenv("LOADERBENCH_DATA", str(tmp_path))
    if start == "second":
        scan(root, progress=False)  # the manifest the second start compares with

    seconds = []

    def run():
        if start == "first":
            shutil.rmtree(tmp_path / "manifests", ignore_errors=True)
        t0 = time.perf_counter()
        ds = scan(root, progress=False)
        seconds.append(time.perf_counter() - t0)
        return ds

    ds = benchmark.pedantic(run, rounds=1 if benchmark.disabled else 3)
    assert len(ds.samples("train")) == n
    files = len(ds.samples("train")) + len(ds.samples("val"))
    record(benchmark, [], start=start, files=files, seconds_median=round(statistics.median(seconds), 3),
           seconds_min=round(min(seconds), 3), seconds_max=round(max(seconds), 3), files_per_sec=round(files / statistics.median(seconds)))
