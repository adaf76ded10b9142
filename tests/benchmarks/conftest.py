"""Helpers for the benchmark suite: the data, the raw loops our wrappers are compared with, and
what every case records in extra_info (images/sec and the hardware fingerprint)."""
from __future__ import annotations

import statistics
import time

import pytest
import torch

import loaders
from bench.hardware import fingerprint
from loaders import LoaderSpec
from loaders.spec import cpu_cores

loaders.base.keep_host_memory()  # as bench.run does: the benchmarks measure what the CLI measures
WORKERS = cpu_cores()
SPEC = LoaderSpec(batch_size=64, res=224, workers=WORKERS, prefetch=2, seed=0)


@pytest.fixture(scope="session")
def embedded(request):
    """The embedded dataset (800 train / 200 val JPEGs, 200-500 px), generated once per session;
    under --benchmark-disable (the normal test run) a tenth of it (`embedded:8`), so that the
    untimed pass (FFCV's .beton conversion included) stays cheap."""
    session = getattr(request.config, "_benchmarksession", None)
    disabled = session is None or session.disabled
    return loaders.resolve("embedded:8" if disabled else "embedded", progress=False)


def rate(fn) -> float:
    """images/sec of one call of fn() (which returns how many images it produced)."""
    t = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t)


def record(benchmark, rates: list[float], **extra) -> None:
    """Median images/sec (+ spread) and the machine's fingerprint into extra_info."""
    if rates:
        benchmark.extra_info["images_per_sec"] = round(statistics.median(rates), 1)
        benchmark.extra_info["images_per_sec_min"] = round(min(rates), 1)
        benchmark.extra_info["images_per_sec_max"] = round(max(rates), 1)
    benchmark.extra_info["hardware"] = fingerprint()
    benchmark.extra_info.update(extra)


def loader_epoch(loader, max_batches: int | None = None):
    """A function that runs one pass (or max_batches) of a built loader, next epoch each call."""
    state = {"epoch": 0}

    def run() -> int:
        loader.set_epoch(state["epoch"])
        state["epoch"] += 1
        n = 0
        for k, (x, _) in enumerate(loader):
            n += x.shape[0]
            if max_batches and k + 1 >= max_batches:
                break
        return n

    return run


def stock_torchvision(dataset, split: str, spec: LoaderSpec):
    """The stock recipe: ImageFolder + RandomResizedCrop + flip + ToTensor + Normalize (val:
    Resize + CenterCrop) in a DataLoader with the same workers; persistent workers, as ours."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    norm = T.Normalize([m / 255 for m in spec.mean], [s / 255 for s in spec.std])
    if split == "train":
        tf = T.Compose([T.RandomResizedCrop(spec.res, spec.scale, spec.ratio), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(spec.resize_side("val")), T.CenterCrop(spec.val_res), T.ToTensor(), norm])
    ds = ImageFolder(str(dataset.root / split), transform=tf)
    w = spec.workers if spec.workers is not None else WORKERS
    return DataLoader(ds, batch_size=spec.batch_size, shuffle=split == "train", num_workers=w,
                      persistent_workers=w > 0, prefetch_factor=spec.prefetch if w > 0 else None)


def close_dataloader(dl) -> None:
    it = getattr(dl, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()


def dataloader_epoch(dl, max_batches: int | None = None):
    def run() -> int:
        n = 0
        for k, (x, _) in enumerate(dl):
            n += x.shape[0]
            if max_batches and k + 1 >= max_batches:
                break
        return n

    return run


def interleave(benchmark, loops: dict, rounds: int) -> dict[str, list[float]]:
    """Run the loops round by round (order rotated each round); images/sec per loop per round.
    Under --benchmark-disable: one round, no warm-up."""
    rates = {k: [] for k in loops}
    names = list(loops)

    def one_round():
        for k in names:
            rates[k].append(rate(loops[k]))
        names.append(names.pop(0))

    if not benchmark.disabled:
        for f in loops.values():  # warm-up: worker start, page cache, first allocations
            f()
    benchmark.pedantic(one_round, rounds=rounds if not benchmark.disabled else 1)
    return rates


def torch_threads(n: int):
    """Context manager setting torch's intra-op threads (restored after)."""
    class _T:
        def __enter__(self):
            self.old = torch.get_num_threads()
            torch.set_num_threads(n)

        def __exit__(self, *exc):
            torch.set_num_threads(self.old)

    return _T()
