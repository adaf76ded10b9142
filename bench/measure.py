"""Timing: warm-up, per-step times, the split between waiting for data and computing, and the
difference between a slow loader and one that stalls.

A step's clock starts when the loop asks the loader for a batch, so the loading this suite
measures is inside the measurement (not after the batch arrived). On CUDA the window is opened
and closed with a synchronize, so queued GPU work is counted. The timer only times: it iterates
the passes it is given and never changes the loader (the caller decides what the next epoch is).

What a window reports (StepMeter.metrics):
  images_per_sec         samples / wall time of the whole window: what a run gets
  steady_images_per_sec  samples / time of the steps that are not stalls: the rate between
                         stalls (a prefetched step counts with its neighbours, never alone)
  stall_s, stall_steps   time lost to steps slower than STALL x the median step (their excess
                         over the median), and how many
  epoch_starts, epoch_start_wait_s
                         epoch boundaries inside the window and what their first batches waited
  p10, p50, p90          of the rates over `window` consecutive steps: a prefetched batch that
                         "arrives" in microseconds is never a throughput figure on its own
  data_wait_frac         share of the step time spent waiting for the batch
"""
from __future__ import annotations

import statistics
import time
from typing import Iterable, Iterator

STALL = 3.0  # a step this many times the median step is a stall, not the steady state
WINDOW = 5  # steps per rate window for the steady state and the percentiles


def cuda_sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class StepMeter:
    """Per-step wait/compute times and sample counts after `warmup` steps. `clock` and `sync`
    are injectable (tests drive them by hand)."""

    def __init__(self, warmup: int = 0, device="cpu", clock=time.perf_counter, sync=cuda_sync, window: int = WINDOW):
        self.warmup, self.device, self.clock, self.sync, self.window = warmup, device, clock, sync, window
        self.waits: list[float] = []
        self.steps: list[float] = []
        self.samples: list[int] = []
        self.starts: list[bool] = []  # the step took the first batch of a pass (an epoch start)
        self.seen = 0
        self.t_start: float | None = None
        self.t_end: float | None = None

    @property
    def measuring(self) -> bool:
        return self.seen >= self.warmup

    def start_window(self) -> float:
        if self.t_start is None:
            self.sync(self.device)
            self.t_start = self.clock()
        return self.t_start

    def record(self, wait: float, step: float, n: int, epoch_start: bool = False) -> None:
        if self.measuring:
            self.waits.append(wait)
            self.steps.append(step)
            self.samples.append(n)
            self.starts.append(epoch_start)
        self.seen += 1

    def stop(self) -> None:
        if self.t_end is None:
            self.sync(self.device)
            self.t_end = self.clock()

    def window_rates(self) -> list[float]:
        """Images/sec over each run of `window` consecutive steps (the last run may be shorter
        only when the whole window is shorter)."""
        k = max(1, min(self.window, len(self.steps)))
        out = []
        for i in range(0, len(self.steps) - k + 1):
            t = sum(self.steps[i:i + k])
            if t > 0:
                out.append(sum(self.samples[i:i + k]) / t)
        return out

    def metrics(self) -> dict:
        if not self.steps:
            return {"images_per_sec": 0.0, "steps": 0}
        wall = (self.t_end if self.t_end is not None else self.clock()) - (self.t_start or 0.0)
        total = sum(self.samples)
        rates = sorted(self.window_rates())
        # "inclusive": within the observed range (the default extrapolates, below 0 for a few)
        q = statistics.quantiles(rates, n=10, method="inclusive") if len(rates) >= 2 else rates * 9
        median_step = statistics.median(self.steps)
        stall = [s > STALL * median_step for s in self.steps]
        stalls = [s - median_step for s, st in zip(self.steps, stall) if st]
        steady_t = sum(s for s, st in zip(self.steps, stall) if not st)
        steady_n = sum(n for n, st in zip(self.samples, stall) if not st)
        return {
            "images_per_sec": round(total / wall, 2) if wall > 0 else 0.0,
            "steady_images_per_sec": round(steady_n / steady_t, 2) if steady_t > 0 else 0.0,
            "p10": round(q[0], 2) if q else 0.0,
            "p50": round(statistics.median(rates), 2) if rates else 0.0,
            "p90": round(q[-1], 2) if q else 0.0,
            "window_steps": max(1, min(self.window, len(self.steps))),
            "stall_s": round(sum(stalls), 4),
            "stall_steps": len(stalls),
            "epoch_starts": sum(self.starts),
            "epoch_start_wait_s": round(sum(w for w, s in zip(self.waits, self.starts) if s), 4),
            "data_wait_frac": round(sum(self.waits) / max(sum(self.steps), 1e-9), 4),
            "steps": len(self.steps),
            "samples": total,
            "wall_s": round(wall, 3),
        }


def timed_batches(passes: Iterable[Iterator], meter: StepMeter, max_steps: int | None = None, seconds: float | None = None):
    """Yield the batches of each pass in `passes` while `meter` times each step.

    The caller does its work between yields; a step runs from asking for the batch to asking
    for the next one. Stops after warm-up + max_steps steps, after `seconds` of measuring, or
    when the passes end.
    """
    clock = meter.clock
    for it in passes:
        first = True
        while True:
            t0 = meter.start_window() if meter.measuring and meter.t_start is None else clock()
            try:
                batch = next(it)
            except StopIteration:
                break
            t1 = clock()
            yield batch
            t2 = clock()
            meter.record(t1 - t0, t2 - t0, int(batch[1].shape[0]), epoch_start=first)
            first = False
            done = max_steps is not None and meter.measuring and len(meter.steps) >= max_steps
            timeout = seconds is not None and meter.t_start is not None and t2 - meter.t_start >= seconds
            if done or timeout:
                meter.stop()
                close = getattr(it, "close", None)  # an abandoned pass lets its workers go now
                if close:
                    close()
                return
    meter.stop()
