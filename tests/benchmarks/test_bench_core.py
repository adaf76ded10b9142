"""The core benchmark suite: loader-only throughput, training steps, the decode ceiling, and
the raw loops next to our wrappers. Every case puts images_per_sec (median over rounds, with
min/max) and the hardware fingerprint in extra_info.

    .venv/bin/python -m pytest tests/benchmarks --benchmark-only                 # measure
    .venv/bin/python -m pytest tests/benchmarks --benchmark-only --benchmark-autosave
    .venv/bin/python -m pytest tests/benchmarks --benchmark-only --benchmark-compare
    .venv/bin/python -m pytest tests/benchmarks --benchmark-only --benchmark-json b.json \
        && .venv/bin/python -m bench.results.benchjson b.json                           # -> results/

Under the normal test run (--benchmark-disable, set in pyproject) each case runs once, untimed,
on a couple of batches. Machines shared with other jobs are noisy: the comparison cases
(`*_vs_*`) interleave their loops round by round and report medians and ratios.
"""
from __future__ import annotations

import statistics

import pytest
import torch

import loaders
from bench.harness.ceiling_mode import VARIANTS, _jpeg_only, read_blobs, run_loop
from loaders import build
from tests.benchmarks.conftest import (SPEC, close_dataloader, dataloader_epoch, interleave, loader_epoch, rate, record,
                                       stock_torchvision, torch_threads)

BACKENDS = [n for n in loaders.names(runnable_here=True) if loaders.role(n) != "ceiling"]  # DALI and FFCV included: make installs them
ARCHS = ["demo_net", "resnet18", "mobilenet_v3_small"]


def _rounds(benchmark, n: int) -> int:
    return 1 if benchmark.disabled else n


def _max_batches(benchmark) -> int | None:
    return 2 if benchmark.disabled else None  # a full epoch when timed


# -- loader-only throughput, every backend x split ---------------------------------------------
@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("name", BACKENDS)
def test_bench_loader(benchmark, embedded, name, split):
    """One full pass per round (the embedded data: 800 train / 200 val images, 224 px)."""
    with torch_threads(1), build(name, split, embedded, SPEC) as loader:
        run = loader_epoch(loader, _max_batches(benchmark))
        if not benchmark.disabled:
            run()  # warm-up pass: worker start, .beton/numba compile, page cache
        rates = []
        benchmark.pedantic(lambda: rates.append(rate(run)), rounds=_rounds(benchmark, 3))
        record(benchmark, rates, loader=name, variant=split, workers=SPEC.workers, batch_size=SPEC.batch_size,
               backend=loader.describe())


# -- one training step per architecture, synthetic data ----------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_bench_train_step(benchmark, arch):
    """Forward + backward + SGD step on a CPU-sized batch (32 x 3 x 128 x 128, channels_last)."""
    from bench.cli.config import RunConfig
    from bench.training.compute import build_model, resolve_amp, seed_everything
    from bench.training.loop import train_step
    from bench.training.state import make_state

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, res = (32, 128) if device.type == "cpu" else (128, 224)
    seed_everything(0)
    model = build_model(arch, 10, res, device, channels_last=True)
    amp = resolve_amp("auto", device)
    state = make_state(model, RunConfig().optim, device, amp, batch)
    x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        train_step(state, x, y, 0.01)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return batch

    rates = []
    benchmark.pedantic(lambda: rates.append(rate(step)), rounds=_rounds(benchmark, 5), warmup_rounds=0 if benchmark.disabled else 1)
    record(benchmark, rates, arch=arch, batch_size=batch, res=res, amp=str(amp), device=str(device), threads=torch.get_num_threads())


# -- the decode ceiling ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_bench_ceiling(benchmark, embedded, variant):
    """Full decode + RandomResizedCrop + flip, files in memory, one process per core (bench/harness/ceiling_mode.py)."""
    blobs = read_blobs(embedded, 400)
    assert variant != "turbo" or _jpeg_only(blobs), "simplejpeg (a dependency) decodes every embedded JPEG"
    seconds = 0.2 if benchmark.disabled else 3.0
    results = []
    benchmark.pedantic(lambda: results.append(run_loop(variant, blobs, seconds=seconds, warmup_s=0 if benchmark.disabled else 0.5)),
                       rounds=_rounds(benchmark, 3))
    record(benchmark, [r["images_per_sec"] for r in results], variant=variant, per_core=statistics.median(r["per_core"] for r in results),
           processes=SPEC.workers)


# -- raw loops next to our wrappers -----------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val"])
def test_bench_torchvision_vs_stock(benchmark, embedded, split):
    """Our torchvision backend vs the stock recipe (ImageFolder + RandomResizedCrop + flip +
    ToTensor + Normalize in a DataLoader, same workers), interleaved; ratio in extra_info."""
    mb = _max_batches(benchmark)
    stock = stock_torchvision(embedded, split, SPEC)
    with torch_threads(1), build("torchvision", split, embedded, SPEC) as ours:
        try:
            rates = interleave(benchmark, {"stock": dataloader_epoch(stock, mb), "ours": loader_epoch(ours, mb)}, rounds=5)
        finally:
            close_dataloader(stock)
    ratio = [a / b for a, b in zip(rates["ours"], rates["stock"])]
    record(benchmark, rates["ours"], loader="torchvision", variant=split,
           stock_images_per_sec=round(statistics.median(rates["stock"]), 1),
           ours_over_stock=round(statistics.median(ratio), 3), ours_over_stock_min=round(min(ratio), 3),
           ours_over_stock_max=round(max(ratio), 3), rounds=len(ratio))


def _raw_threads(embedded, split, spec, max_batches=None):
    """The torchvision backend's work without the Loader: the same per-sample function in a
    ThreadPoolExecutor.map, one task per batch, inline normalisation (what the wrapper must
    stay within 5% of)."""
    from concurrent.futures import ThreadPoolExecutor

    from loaders.normalize import normalize
    from loaders.torchvision import _batch

    samples = embedded.samples(split)
    order = list(range(len(samples)))
    chunks = [order[i:i + spec.batch_size] for i in range(0, len(order), spec.batch_size)][:max_batches]
    pool = ThreadPoolExecutor(spec.workers)

    def run() -> int:
        n = 0
        for images, labels in pool.map(lambda c: _batch(samples, split, spec, spec.res, 0, c, False), chunks):
            n += normalize(images, spec).shape[0]
        return n

    return run, pool


@pytest.mark.parametrize("split", ["train", "val"])
def test_bench_torchvision_wrapper_vs_raw(benchmark, embedded, split):
    mb = _max_batches(benchmark)
    raw, pool = _raw_threads(embedded, split, SPEC, mb)
    with torch_threads(1), build("torchvision", split, embedded, SPEC) as ours:
        try:
            rates = interleave(benchmark, {"raw": raw, "wrapper": loader_epoch(ours, mb)}, rounds=5)
        finally:
            pool.shutdown()
    ratio = [a / b for a, b in zip(rates["wrapper"], rates["raw"])]
    record(benchmark, rates["wrapper"], loader="torchvision", variant=split, raw_images_per_sec=round(statistics.median(rates["raw"]), 1),
           wrapper_over_raw=round(statistics.median(ratio), 3), rounds=len(ratio))
