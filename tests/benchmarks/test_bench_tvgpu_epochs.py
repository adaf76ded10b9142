"""torchvision-gpu (CPU dry run) loader-only throughput on 3-batch epochs (192 images at batch 64)
against the same files as one long epoch, with and without the next pass started ahead: what
an epoch start costs, and how much of it `ahead` hides.

    .venv/bin/python -m pytest tests/benchmarks/test_bench_tvgpu_epochs.py --benchmark-only -s
"""
from __future__ import annotations

import statistics

import pytest

from loaders.datasets import Dataset
from loaders.torchvision_gpu import TorchvisionGpuLoader
from tests.benchmarks.conftest import SPEC, count_images, interleave

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def _subset(ds: Dataset, n: int) -> Dataset:
    s = ds.samples("train")[:n]
    return Dataset(f"{ds.name}-{n}", ds.root, ds.classes, {"train": s, "val": s}, f"{ds.fingerprint}-{n}")


def test_bench_tvgpu_short_vs_long_epochs(benchmark, embedded):
    short_n = min(192, len(embedded.samples("train")))
    # each round: 4 short epochs, or the same count from one long pass (untimed run: one epoch)
    images = short_n if benchmark.disabled else 4 * short_n
    spec = SPEC.with_(device="cpu")
    loaders = {"short": TorchvisionGpuLoader("train", _subset(embedded, short_n), spec),
               "short, ahead=false": TorchvisionGpuLoader("train", _subset(embedded, short_n), spec.with_(options={"ahead": False})),
               "long": TorchvisionGpuLoader("train", embedded, spec)}
    epoch = {k: 0 for k in loaders}

    def run(name):
        def go() -> int:
            L, n = loaders[name], 0
            while n < images:
                L.set_epoch(epoch[name])
                epoch[name] += 1
                n += count_images(L, max_batches=(images - n) // spec.batch_size or 1)
            return n
        return go

    try:
        rates = interleave(benchmark, {k: run(k) for k in loaders}, rounds=3)
    finally:
        for L in loaders.values():
            L.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    benchmark.extra_info.update({f"{k}_images_per_sec": round(v, 1) for k, v in med.items()},
                                short_over_long=round(med["short"] / med["long"], 3),
                                short_no_ahead_over_long=round(med["short, ahead=false"] / med["long"], 3))
    print("\n" + ", ".join(f"{k} {v:.0f} img/s" for k, v in med.items())
          + f"; short/long {med['short'] / med['long']:.2f} (ahead=false: {med['short, ahead=false'] / med['long']:.2f})")
