"""`--mode loader`: loader-only images/sec per split, and the ratio to the decode ceiling."""
from __future__ import annotations

import time

import loaders

from ..measure import StepMeter, timed_batches
from .context import passes
from .honesty import window_warnings


def run(ctx, name: str, arch=None) -> list[dict]:
    cfg = ctx.cfg
    splits = ("train", "val") if cfg.run.split == "both" else (cfg.run.split,)
    steps = cfg.measure.steps if cfg.measure.steps is not None else 50
    out = []
    for split in splits:
        t0 = time.perf_counter()
        with loaders.build(name, split, ctx.dataset, ctx.spec(name)) as loader:
            build_s = time.perf_counter() - t0
            meter = StepMeter(warmup=cfg.measure.warmup, device=ctx.device)
            t_first = None
            with ctx.bar(total=cfg.measure.warmup + steps, desc=f"{name} {split}", unit="batch") as bar:
                for _ in timed_batches(passes(loader), meter, max_steps=steps, seconds=cfg.measure.seconds):
                    t_first = t_first or time.perf_counter() - t0
                    bar.update()
            metrics = meter.metrics()
            metrics.pop("data_wait_frac", None)  # the whole step is loading here
            ceiling = ctx.decode_ceiling()
            if ceiling and split == "train":
                metrics.update(ceiling=ceiling, ceiling_ratio=round(metrics["images_per_sec"] / ceiling, 4))
            metrics["backend"] = {**loader.facts(), "build_s": round(build_s, 3), "first_batch_s": round(t_first or 0, 3)}
            out.append(ctx.record("loader", loader=name, variant=split, metrics=metrics, config=ctx.resolved(name, backend=loader.describe()),
                                  warnings=window_warnings(metrics, cfg.measure.warmup)))
    return out
