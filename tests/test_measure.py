"""The suite's core measurement, on a fake clock: warm-up exclusion, data-wait attribution,
the step and seconds cut-offs, steady state against stalls, epoch starts."""
from __future__ import annotations

import pytest
import torch

from bench.measure import StepMeter, timed_batches


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def fake_pass(clock, waits, n=4):
    """A pass whose k-th batch takes waits[k] seconds to arrive."""
    for w in waits:
        clock.t += w
        yield torch.zeros(n), torch.zeros(n)


def run(passes, clock, compute, **kw):
    """Consume the timed batches, `compute` seconds of work per step (the caller's share)."""
    meter = StepMeter(clock=clock, sync=lambda d: None, **{k: kw.pop(k) for k in ("warmup", "window") if k in kw})
    for _ in timed_batches(passes, meter, **kw):
        clock.t += compute
    return meter


def test_warmup_steps_are_excluded_and_wait_is_attributed():
    clock = Clock()
    # 2 slow warm-up batches (1 s each), then 6 batches that wait 0.1 s, each step computing 0.3 s
    meter = run([fake_pass(clock, [1.0, 1.0] + [0.1] * 6)], clock, compute=0.3, warmup=2)
    m = meter.metrics()
    assert m["steps"] == 6 and m["samples"] == 24
    assert m["wall_s"] == pytest.approx(6 * 0.4)
    assert m["images_per_sec"] == pytest.approx(24 / 2.4)
    assert m["data_wait_frac"] == pytest.approx(0.25)
    assert m["steady_images_per_sec"] == pytest.approx(10.0) and m["stall_steps"] == 0 and m["stall_s"] == 0


def test_max_steps_and_seconds_cut_the_window():
    clock = Clock()
    assert run([fake_pass(clock, [0.1] * 50)], clock, compute=0.1, max_steps=7).metrics()["steps"] == 7
    clock = Clock()
    m = run([fake_pass(clock, [0.125] * 50)], clock, compute=0.125, seconds=1.0).metrics()  # binary fractions: exact sums
    assert m["steps"] == 4 and m["wall_s"] == pytest.approx(1.0)


def test_stalls_at_epoch_starts_are_told_apart_from_the_steady_state():
    clock = Clock()
    # three passes of 5 batches: each epoch's first batch waits 2 s, the rest 0.05 s
    passes = [fake_pass(clock, [2.0] + [0.05] * 4) for _ in range(3)]
    m = run(passes, clock, compute=0.15).metrics()
    assert m["steps"] == 15 and m["epoch_starts"] == 3
    assert m["epoch_start_wait_s"] == pytest.approx(6.0)
    assert m["stall_steps"] == 3 and m["stall_s"] == pytest.approx(3 * (2.15 - 0.2))
    assert m["steady_images_per_sec"] == pytest.approx(4 / 0.2), "the rate between the stalls"
    assert m["images_per_sec"] == pytest.approx(60 / (3 * 2.15 + 12 * 0.2), abs=0.01), "the mean pays for them"
    assert m["p10"] <= m["p50"] <= m["p90"] and m["window_steps"] == 5


def test_percentiles_are_over_windows_never_single_prefetched_steps():
    clock = Clock()
    # a prefetched batch every other step (no wait, no compute): alone it would read as infinite
    waits = [0.0 if k % 2 else 0.2 for k in range(20)]
    meter = run([fake_pass(clock, waits)], clock, compute=0.0, window=4)
    m = meter.metrics()
    assert m["p90"] == pytest.approx(4 * 4 / 0.4) and m["p10"] == pytest.approx(m["p90"])


class LoaderPass:
    """A pass that is loader-like too: the timer may iterate it and close it, nothing else."""

    def __init__(self, clock, n):
        self.batches, self.closed = fake_pass(clock, [0.1] * n), False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.batches)

    def close(self):
        self.closed = True

    def set_epoch(self, *a, **kw):
        raise AssertionError("timed_batches must not set the epoch")

    def set_resolution(self, *a, **kw):
        raise AssertionError("timed_batches must not set the resolution")


def test_the_timer_never_changes_the_loader_and_closes_an_abandoned_pass():
    clock = Clock()
    whole, cut = LoaderPass(clock, 3), LoaderPass(clock, 5)
    meter = run([whole, cut], clock, compute=0.0, warmup=0, max_steps=5)  # passes come from the caller
    assert meter.metrics()["steps"] == 5
    assert not whole.closed and cut.closed, "the pass cut off after 2 of its 5 batches lets its workers go"


def test_the_device_is_synced_once_when_the_window_opens_and_once_when_it_closes():
    clock, synced = Clock(), []
    meter = StepMeter(clock=clock, sync=lambda d: synced.append(clock.t), warmup=1)
    for _ in timed_batches([fake_pass(clock, [0.1] * 4)], meter):
        clock.t += 0.2
    assert len(synced) == 2 and synced[0] < synced[1]


def test_an_empty_window_is_zero_not_an_error():
    assert StepMeter(sync=lambda d: None).metrics() == {"images_per_sec": 0.0, "steps": 0}
