"""Helpers for the benchmark suite: the data, the raw loops our wrappers are compared with, and
what every case records in extra_info (images/sec and the hardware fingerprint)."""
from __future__ import annotations

import statistics
import time

import pytest
import torch

import loaders
from bench.results import fingerprint
from loaders import LoaderSpec
from loaders.host import cpu_cores, keep_host_memory

keep_host_memory()  # as bench.run does: the benchmarks measure what the CLI measures
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


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory):
    """512 ImageNet-like JPEGs (32 renders, 200-500 px, each copied 16 times; 8 batches of 64)
    in 4 classes: the same files for a wrapper and its raw-library loop."""
    import shutil

    from loaders.datasets import scan
    from loaders.datasets.generated import render

    renders, copies, classes = 32, 16, 4
    root = tmp_path_factory.mktemp("raw-bench")
    for split in ("train", "val"):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True)
    for i in range(renders):
        src = root / "train" / f"c{i % classes}" / f"r{i:03d}_0.jpg"
        src.write_bytes(render("train", i % 10, i))
        for k in range(1, copies):
            shutil.copyfile(src, src.with_name(f"r{i:03d}_{k}.jpg"))
        if i < classes:
            shutil.copyfile(src, root / "val" / f"c{i}" / "v.jpg")
    return scan(root, progress=False)


def wrapper_vs_raw(benchmark, loops: dict, rounds: int, wrapper="wrapper", raw="bare+norm") -> dict:
    """Interleave the loops, put medians and the wrapper/raw ratios (of medians, and the median
    of same-round pairs, which share the machine's load) in extra_info; return the medians."""
    rates = interleave(benchmark, loops, rounds)
    med = {k: statistics.median(v) for k, v in rates.items()}
    paired = [w / b for w, b in zip(rates[wrapper], rates[raw])]
    benchmark.extra_info.update({f"{k}_images_per_sec": round(v, 1) for k, v in med.items()})
    benchmark.extra_info.update(wrapper_over_raw=round(med[wrapper] / med[raw], 3), wrapper_over_raw_paired_median=round(statistics.median(paired), 3),
                                rounds=len(rates[wrapper]), hardware=fingerprint())
    print("\n" + ", ".join(f"{k} {v:.0f} img/s" for k, v in med.items())
          + f"; {wrapper} / {raw} = {med[wrapper] / med[raw]:.3f} (paired median {statistics.median(paired):.3f})")
    return med


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
        return count_images(loader, max_batches)

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


def count_images(batches, max_batches: int | None = None) -> int:
    """Images in one pass over `batches` (the first max_batches only, if given)."""
    n = 0
    for k, (x, _) in enumerate(batches):
        n += x.shape[0]
        if max_batches and k + 1 >= max_batches:
            break
    return n


def dataloader_epoch(dl, max_batches: int | None = None):
    return lambda: count_images(dl, max_batches)


MIN_IMAGES = 1000  # per loop and round: several passes of a small split, so a pass's prefetched head weighs little


def interleave(benchmark, loops: dict, rounds: int, settle: bool = True, min_images: int = MIN_IMAGES) -> dict[str, list[float]]:
    """Run the loops round by round (order rotated each round); images/sec per loop per round.

    A loop's turn starts with one untimed call (`settle`): a loader that builds its next pass
    ahead keeps working after its pass returns, so without it that work would run in the next
    loop's timed turn (slowing it) and arrive ready in its own (a 200-image val pass read at
    7,000 img/s, 16.8x its raw loop, on a 2-core machine whose decode ceiling is ~600). Then the
    timed calls run back to back until `min_images`: what a loader gains from its own passes
    overlapping, as in a run, is counted; nothing it did in another loop's time is.
    Under --benchmark-disable: one round of one call each, untimed."""
    rates = {k: [] for k in loops}
    names = list(loops)

    def turn(f) -> float:
        if settle:
            f()
        t, n = time.perf_counter(), 0
        while True:
            n += f()
            if n >= min_images:
                return n / (time.perf_counter() - t)

    def one_round():
        for k in names:
            rates[k].append(turn(loops[k]) if not benchmark.disabled else rate(loops[k]))
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
