"""Timing: warm-up, per-step times, and the split between waiting for data and computing.

A step's clock starts when the loop asks the loader for a batch, so the loading this suite
measures is inside the measurement (not after the batch arrived). On CUDA the window is
closed with a synchronize, so queued GPU work is counted; per-step host times between those
points show where the host waited for data.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class StepMeter:
    """Per-step wait/compute times and sample counts after `warmup` steps."""

    def __init__(self, warmup: int = 0, device="cpu"):
        self.warmup, self.device = warmup, device
        self.waits: list[float] = []
        self.steps: list[float] = []
        self.samples: list[int] = []
        self.seen = 0
        self.t_start: float | None = None
        self.t_end: float | None = None

    @property
    def measuring(self) -> bool:
        return self.seen >= self.warmup

    def start_window(self):
        if self.t_start is None:
            sync(self.device)
            self.t_start = time.perf_counter()

    def record(self, wait: float, step: float, n: int):
        if self.measuring:
            self.waits.append(wait)
            self.steps.append(step)
            self.samples.append(n)
        self.seen += 1

    def stop(self):
        sync(self.device)
        self.t_end = time.perf_counter()

    def metrics(self) -> dict:
        if not self.steps:
            return {"images_per_sec": 0.0, "steps": 0}
        wall = (self.t_end or time.perf_counter()) - (self.t_start or 0)
        total = sum(self.samples)
        per_step = sorted(n / s for n, s in zip(self.samples, self.steps) if s > 0)
        # "inclusive": within the observed range (the default extrapolates, below 0 for a few steps)
        q = statistics.quantiles(per_step, n=10, method="inclusive") if len(per_step) >= 2 else per_step * 9
        return {
            "images_per_sec": round(total / wall, 2) if wall > 0 else 0.0,
            "p10": round(q[0], 2),
            "p50": round(statistics.median(per_step), 2),
            "p90": round(q[-1], 2),
            "data_wait_frac": round(sum(self.waits) / max(sum(self.steps), 1e-9), 4),
            "steps": len(self.steps),
            "samples": total,
            "wall_s": round(wall, 3),
        }


def timed_batches(loader, meter: StepMeter, max_steps: int | None = None, seconds: float | None = None, epochs_cap: int = 10_000):
    """Yield batches from `loader` (cycling epochs) while the meter times each step.

    The caller does its work between yields; the step time runs from asking for the batch to
    asking for the next one. Stops after warm-up + max_steps steps or `seconds` of measuring.
    """
    epoch = getattr(loader, "epoch", 0)
    for _ in range(epochs_cap):
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            if meter.measuring and meter.t_start is None:
                meter.start_window()
                t0 = meter.t_start
            try:
                batch = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            yield batch
            t2 = time.perf_counter()
            meter.record(t1 - t0, t2 - t0, int(batch[1].shape[0]))
            done = max_steps is not None and meter.measuring and len(meter.steps) >= max_steps
            timeout = seconds is not None and meter.t_start is not None and t2 - meter.t_start >= seconds
            if done or timeout:
                meter.stop()
                return
        epoch += 1
        loader.set_epoch(epoch)
    meter.stop()


@contextmanager
def stopwatch():
    out = {}
    t0 = time.perf_counter()
    yield out
    out["s"] = time.perf_counter() - t0
