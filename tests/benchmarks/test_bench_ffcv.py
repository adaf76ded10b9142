"""Loader-only images/sec: the project's `ffcv` loader vs a bare FFCV `Loader` loop.

Both read the same `.beton` (the backend's default write policy: JPEG q90, max 512 px) with
the same decoder (RandomResizedCropRGBImageDecoder + RandomHorizontalFlip), workers, batch
size and batches_ahead. The bare loop is FFCV as its docs write it, minus the
`ToTensor, ToTorchImage, NormalizeImage, ToDevice` tail that hangs on CPU (see loaders/ffcv.py):
"bare" is FFCV alone (uint8 NHWC out), "bare+norm" hands each batch to the project's one
`normalize` and `labels_to`, the conversion the wrapper's output contract needs, so
wrapper / bare+norm isolates the wrapper's own cost (order adapter, label copy, generator).

Each Loader's first epoch compiles the pipeline with numba (seconds): the fixtures run it once,
untimed, and report it as `first_epoch_s`; the timed epochs never include it.

    .venv/bin/python -m pytest tests/benchmarks/test_bench_ffcv.py --benchmark-enable -s

Under the normal test run (--benchmark-disable) each case runs one epoch, untimed, on loaders
shared by the module (two numba compilations in all).
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch


from loaders import LoaderSpec, build  # noqa: E402
from tests.benchmarks.conftest import loader_epoch, rate, wrapper_vs_raw  # noqa: E402
from loaders.normalize import labels_to, normalize  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # numba finalizer noise

SPEC = LoaderSpec(batch_size=64, res=224, workers=2, seed=0, options={"progress": False})


def _first_epoch(epoch) -> float:
    t = time.perf_counter()
    epoch()
    return time.perf_counter() - t


@pytest.fixture(scope="module")
def wrapper(bench_data):
    """(epoch function, loader, first-epoch seconds incl. numba compile)."""
    loader = build("ffcv", "train", bench_data, SPEC)
    epoch = loader_epoch(loader)

    first = _first_epoch(epoch)
    yield epoch, loader, first
    loader.close()


@pytest.fixture(scope="module")
def bare(wrapper):
    """A bare FFCV Loader on the wrapper's .beton: (epoch(normalise) function, first-epoch s)."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import RandomHorizontalFlip

    _, wl, _ = wrapper
    threads = torch.get_num_threads()
    loader = Loader(
        str(wl.path), batch_size=SPEC.batch_size, num_workers=SPEC.workers, order=OrderOption.RANDOM,
        os_cache=True, drop_last=False, batches_ahead=3, seed=0,
        pipelines={"image": [RandomResizedCropRGBImageDecoder((SPEC.res, SPEC.res), scale=SPEC.scale, ratio=SPEC.ratio),
                             RandomHorizontalFlip()],
                   "label": [IntDecoder()]},
    )
    torch.set_num_threads(threads)  # FFCV sets it to num_workers process-wide
    def epoch(normalise: bool) -> int:
        n = 0
        for images, labels in loader:
            x, y = torch.from_numpy(images), torch.from_numpy(labels)
            if normalise:
                x, y = normalize(x, SPEC, "NHWC"), labels_to(y.reshape(-1), SPEC)
            n += x.shape[0]
        torch.set_num_threads(threads)
        return n

    first = _first_epoch(lambda: epoch(True))
    yield epoch, first


def test_bench_ffcv_wrapper(benchmark, wrapper):
    epoch, loader, first = wrapper
    rates = []
    benchmark.pedantic(lambda: rates.append(rate(epoch)), rounds=5)
    benchmark.extra_info.update(images_per_sec=round(statistics.median(rates), 1), images=loader.num_samples,
                                first_epoch_s=round(first, 2), **{k: loader.stats[k] for k in ("beton_bytes", "convert_s", "warm_s")})  # warm_s: the compile, at construction


def test_bench_ffcv_bare(benchmark, bare, bench_data):
    epoch, first = bare
    rates = []
    benchmark.pedantic(lambda: rates.append(rate(lambda: epoch(True))), rounds=5)
    benchmark.extra_info.update(images_per_sec=round(statistics.median(rates), 1), images=len(bench_data.samples("train")),
                                first_epoch_s=round(first, 2))


def test_bench_ffcv_wrapper_vs_bare(benchmark, wrapper, bare):
    """Interleaved rounds: medians and wrapper / bare+norm ratio (bare: FFCV uint8 alone)."""
    w_epoch, loader, w_first = wrapper
    b_epoch, b_first = bare
    wrapper_vs_raw(benchmark, {"wrapper": w_epoch, "bare+norm": lambda: b_epoch(True), "bare": lambda: b_epoch(False)}, rounds=7)
    benchmark.extra_info.update(wrapper_first_epoch_s=round(w_first, 2), bare_first_epoch_s=round(b_first, 2),
                                beton_bytes=loader.stats["beton_bytes"], convert_s=loader.stats["convert_s"])
