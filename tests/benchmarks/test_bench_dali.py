"""Loader-only images/sec: the project's `dali` loader vs a bare DALI pipeline loop.

The bare loop is written directly against DALI's API the way its docs show it (fn.readers.file
with DALI's own shuffle -> fused decode+crop -> resize -> flip, one pipeline and one
DALIGenericIterator with PARTIAL for every epoch), on the same files, with the same threads and
prefetch depth. "bare+norm" adds the same uint8 -> normalised float channels_last conversion
inline (what the wrapper's output contract costs); "bare" is DALI alone, uint8 out. The wrapper
keeps one train pipeline for every epoch too (our order, and crops computed by its feed from the
per-sample RNG: loaders/dali_source.py), its next epoch's first batches in flight before this
one ends (loaders/dali_ahead.py). Both run prefetch_queue_depth iterations ahead across the
epoch's end, so in interleaved rounds each may decode its next epoch's first batches (2 of 8)
during the other loops' time, alike. A cold epoch start (a new resolution: a new pipeline) is
`test_bench_dali_epoch_start`; short vs long epochs is tests/benchmarks/test_bench_epochs.py.

    .venv/bin/python -m pytest tests/benchmarks/test_bench_dali.py --benchmark-enable -s

Under the normal test run (--benchmark-disable) each case runs one short epoch, untimed.
Timings on a shared machine are noisy: `test_bench_dali_wrapper_vs_bare` interleaves the loops
round by round and reports medians and the ratio in extra_info.
"""
from __future__ import annotations

import statistics
import time


from loaders import LoaderSpec, build  # noqa: E402
from loaders.normalize import labels_to, normalize  # noqa: E402
from tests.benchmarks.conftest import loader_epoch, rate, wrapper_vs_raw  # noqa: E402

SPEC = LoaderSpec(batch_size=64, res=224, workers=2, prefetch=2, seed=0)


def _bare(dataset, spec: LoaderSpec):
    """A DALI train loop as its docs write it; returns a function that runs one epoch."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    files, labels = zip(*dataset.samples("train"))

    @pipeline_def(batch_size=spec.batch_size, num_threads=spec.workers, device_id=None, seed=1,
                  prefetch_queue_depth=spec.prefetch)
    def pipe():
        jpegs, lab = fn.readers.file(files=list(files), labels=list(labels), random_shuffle=True,
                                     pad_last_batch=True, name="Reader")
        images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                               random_area=[0.08, 1.0], random_aspect_ratio=[3 / 4, 4 / 3])
        images = fn.resize(images, size=[spec.res, spec.res], antialias=True)
        images = fn.flip(images, horizontal=fn.random.coin_flip())
        return images, lab

    p = pipe()
    p.build()
    it = DALIGenericIterator(p, ["images", "labels"], reader_name="Reader", last_batch_policy=LastBatchPolicy.PARTIAL,
                             auto_reset=True)

    def epoch(normalise: bool) -> int:
        n = 0
        for out in it:  # auto_reset: the iterator starts the next epoch after this one ends
            x, y = out[0]["images"], out[0]["labels"]
            if normalise:  # the same output contract as the wrapper, through the same function
                x, y = normalize(x, spec, "NHWC"), labels_to(y, spec)
            n += x.shape[0]
        return n

    return epoch, (p, it)


def _wrapper(dataset, spec: LoaderSpec):
    loader = build("dali", "train", dataset, spec)
    return loader_epoch(loader), loader


def test_bench_dali_wrapper(benchmark, bench_data):
    epoch, loader = _wrapper(bench_data, SPEC)
    with loader:
        rates = []
        benchmark.pedantic(lambda: rates.append(rate(epoch)), rounds=4, warmup_rounds=1)
    benchmark.extra_info.update(images_per_sec=statistics.median(rates), images=loader.num_samples)


def test_bench_dali_bare(benchmark, bench_data):
    epoch, pipe = _bare(bench_data, SPEC)
    rates = []
    benchmark.pedantic(lambda: rates.append(rate(lambda: epoch(True))), rounds=4, warmup_rounds=1)
    benchmark.extra_info.update(images_per_sec=statistics.median(rates), images=len(bench_data.samples("train")))
    del pipe


def test_bench_dali_wrapper_vs_bare(benchmark, bench_data):
    """Interleaved rounds: medians and wrapper / bare+norm ratio (bare: DALI uint8 alone)."""
    wrapper, loader = _wrapper(bench_data, SPEC)
    bare, pipe = _bare(bench_data, SPEC)
    with loader:
        wrapper_vs_raw(benchmark, {"wrapper": wrapper, "bare+norm": lambda: bare(True), "bare": lambda: bare(False)}, rounds=5)
    del pipe


def test_bench_dali_epoch_start(benchmark, bench_data):
    """What a cold epoch start costs the wrapper: the resolution changes at every boundary, so
    the batches in flight (cross-epoch prefetch) are dropped and the pass builds the pipeline
    of its resolution: the time to its first batch (teardown, build, first decode)."""
    loader = build("dali", "train", bench_data, SPEC.with_(batch_size=32))
    state = {"epoch": 0, "it": None, "first": []}

    def finish_epoch():  # untimed: the previous pass runs to its end, as in training
        if state["it"] is not None:
            for _ in state["it"]:
                pass

    def start():
        state["epoch"] += 1
        loader.set_epoch(state["epoch"])
        loader.set_resolution(224 if state["epoch"] % 2 else 192)
        t = time.perf_counter()
        state["it"] = iter(loader)
        next(state["it"])
        state["first"].append(time.perf_counter() - t)

    with loader:
        benchmark.pedantic(start, setup=finish_epoch, rounds=5)
        finish_epoch()
    benchmark.extra_info.update(first_batch_ms=round(1e3 * statistics.median(state["first"]), 1),
                                files=len(bench_data.samples("train")), batch_size=32)
