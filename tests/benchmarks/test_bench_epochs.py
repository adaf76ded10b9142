"""Short epochs vs long ones: loader-only images/sec when every epoch is 3 batches (192 images
at batch 64) against one 4,000-image epoch of the same kind of files, per backend. Without
cross-epoch prefetch (loaders/prefetch.py) each epoch start waits for a cold batch; with it the
goal is short within 10% of long (issue 18: measured before, dali-cpu 0.72, torchvision
0.77-1.0, ffcv ~1.0).

    python -m pytest tests/benchmarks/test_bench_epochs.py --benchmark-enable -s

Both sets are the same 192 generated JPEGs (ImageNet-like, 200-500 px), the long one cycling
through them as 4,000 files. Each round reads about 4,000 images from each (21 short epochs /
one long one), interleaved; extra_info has the medians and short / long. Under the normal test
run (--benchmark-disable) one round on a 256-image long set, untimed.
"""
from __future__ import annotations

import os
import statistics

import pytest

from loaders import LoaderSpec, build
from tests.benchmarks.conftest import WORKERS, count_images, interleave, record

SPEC = LoaderSpec(batch_size=64, res=224, workers=WORKERS, prefetch=2, seed=0)
SHORT, LONG, RENDERS = 192, 4000, 192
CASES = [("torchvision", {"pool": "threads"}), ("torchvision", {"pool": "processes"}), ("dali-cpu", {}), ("ffcv", {})]
IDS = ["torchvision-threads", "torchvision-processes", "dali-cpu", "ffcv"]


@pytest.fixture(scope="module")
def sets(request, tmp_path_factory):
    """(short, long) datasets: 192 renders, and the same renders cycled to 4,000 files."""
    from loaders.datasets import scan
    from loaders.datasets.generated import render

    session = getattr(request.config, "_benchmarksession", None)
    long_n = 256 if session is None or session.disabled else LONG
    src = tmp_path_factory.mktemp("epochs-src")
    blobs = []
    for i in range(RENDERS):
        blobs.append(src / f"r{i:03d}.jpg")
        blobs[-1].write_bytes(render("train", i % 10, i))
    out = []
    for name, n in (("short", SHORT), ("long", long_n)):
        root = tmp_path_factory.mktemp(f"epochs-{name}")
        for split, count in (("train", n), ("val", 8)):
            for c in range(4):
                (root / split / f"c{c}").mkdir(parents=True)
            for i in range(count):
                os.link(blobs[i % RENDERS], root / split / f"c{i % 4}" / f"{i:05d}.jpg")
        out.append(scan(root, progress=False))
    return out


def epochs(loader, images: int):
    """A function reading consecutive epochs (set_epoch before each) until `images` are read."""
    state = {"epoch": 0}

    def run() -> int:
        n = 0
        while n < images:
            state["epoch"] += 1
            loader.set_epoch(state["epoch"])
            n += count_images(loader)
        return n

    return run


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_bench_short_vs_long_epochs(benchmark, sets, name, options):
    short, long = sets
    spec = SPEC.with_(options=options)
    with build(name, "train", short, spec) as s, build(name, "train", long, spec) as lg:
        total = lg.num_samples
        # each call reads >= 4,000 images (20 short epochs): a settle call would double the case for at most one epoch start
        rates = interleave(benchmark, {"short": epochs(s, total), "long": epochs(lg, total)}, rounds=3, settle=False)
        prefetched = s.facts().get("passes_prefetched")
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["short"] / med["long"]
    record(benchmark, rates["short"], short_images_per_sec=round(med["short"], 1), long_images_per_sec=round(med["long"], 1),
           short_over_long=round(ratio, 3), short_epoch_images=s.num_samples, long_epoch_images=total,
           short_passes_prefetched=prefetched)
    print(f"\n{name} {options}: short {med['short']:.0f} img/s, long {med['long']:.0f} img/s, short/long {ratio:.3f}")
