"""A training schedule that holds on any data-set size: a minimum number of optimiser steps.

A recipe tuned on 60,000 images (e.g. 8 epochs = 1,880 steps of 256) gives a 6,000-image
subset 190 steps: too few updates to converge (measured: 0.742 top-1 after 5 epochs, 0.831
after 20). Convergence needs a number of *updates* more than a number of passes, and the
random crops and flips keep repeated passes over a small set from being repeats. So a recipe
may set `min_steps`: when its epochs give fewer optimiser steps than that, the whole schedule is
stretched by one factor, every epoch-valued point with it (warm-up, LR peak, step length,
resolution ramp), so the learning-rate curve keeps its shape over the longer run.

    cfg = stretched(cfg, train_samples=len(dataset.samples("train")), world=comm.world)
"""
from __future__ import annotations

import math


def steps_per_epoch(train_samples: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps in one epoch on one rank: nothing is dropped or padded, so the last,
    partial batch is a step too (ranks differ by at most one sample)."""
    return math.ceil(math.ceil(train_samples / world) / batch_size)


def stretch_factor(epochs: int, min_steps: int | None, train_samples: int, batch_size: int, world: int = 1) -> tuple[int, float]:
    """(epochs to run, factor over the asked epochs): the asked epochs when they give at least
    min_steps steps, else the fewest whole epochs that do."""
    if not min_steps or epochs <= 0:
        return epochs, 1.0
    per_epoch = steps_per_epoch(train_samples, batch_size, world)
    if epochs * per_epoch >= min_steps:
        return epochs, 1.0
    longer = math.ceil(min_steps / per_epoch)
    return longer, longer / epochs


def stretched(cfg, train_samples: int, world: int = 1):
    """`cfg` (a RunConfig) with its schedule stretched to schedule.min_steps optimiser steps
    (unchanged when its epochs already give that many). Pure: returns a copy."""
    s = cfg.schedule
    epochs, f = stretch_factor(s.epochs, s.min_steps, train_samples, cfg.data.batch_size, world)
    if f == 1.0:
        return cfg

    def scale(v):
        return None if v is None else type(v)(round(v * f)) if isinstance(v, int) else round(v * f, 3)

    return cfg.replace(epochs=epochs, lr_peak_epoch=scale(s.lr_peak_epoch), warmup_epochs=scale(s.warmup_epochs),
                       step_length=max(1, scale(s.step_length)), start_ramp=scale(s.start_ramp), end_ramp=scale(s.end_ramp))


def describe(before, after, train_samples: int, world: int = 1) -> str | None:
    """One line for the log when the schedule was stretched, else None."""
    b, a = before.schedule, after.schedule
    if a.epochs == b.epochs:
        return None
    per_epoch = steps_per_epoch(train_samples, before.data.batch_size, world)
    return (f"note: {train_samples:,} train images give {per_epoch} steps an epoch; {b.epochs} epochs -> {a.epochs} "
            f"to reach min_steps {b.min_steps} (LR peak at epoch {b.lr_peak_epoch:g} -> {a.lr_peak_epoch:g}); "
            "--min-steps 0 turns this off")
