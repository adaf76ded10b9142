"""`--mode scaling`: loader-only images/sec at 1, 2, 4, ... workers up to the cores, per loader.

    python -m bench.run --mode scaling --loader torchvision,dali-cpu,ffcv --steps 20

One record of kind "scaling" per (loader, split, worker count), variant = the split, with the
point's worker count in `config.workers` and `metrics.workers`: a point that fails becomes an
error record and the curve keeps its other points; repeated runs aggregate per point like any
other configuration. The report's planning table reads these curves (bench/report/plan.py).
Each point builds a fresh loader (the worker count is fixed at construction), times `--steps`
batches after `--warmup` like `--mode loader`, and uses the backend's default settings for
that worker count (for example a pool kind that depends on it).
"""
from __future__ import annotations

import loaders
from loaders.host import cpu_cores

from ..measure import StepMeter, timed_batches
from .context import passes

def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... below `cores`, then `cores` itself (6 cores: 1, 2, 4, 6)."""
    counts, w = [], 1
    while w < cores:
        counts.append(w)
        w *= 2
    return counts + [max(1, cores)]


def _point(ctx, name: str, split: str, workers: int, bar) -> dict:
    cfg = ctx.cfg
    steps = cfg.measure.steps if cfg.measure.steps is not None else 50
    spec = ctx.spec(name).with_(workers=workers)
    with loaders.build(name, split, ctx.dataset, spec) as loader:
        meter = StepMeter(warmup=cfg.measure.warmup, device=ctx.device)
        for _ in timed_batches(passes(loader), meter, max_steps=steps, seconds=cfg.measure.seconds):
            bar.update()
        metrics = {**meter.metrics(), "workers": workers, "backend": loader.facts()}
        metrics.pop("data_wait_frac", None)  # the whole step is loading here
        config = ctx.resolved(name, workers=workers, backend=loader.describe())
    return ctx.record("scaling", loader=name, variant=split, metrics=metrics, config=config)


def run(ctx, name: str, arch=None) -> list[dict]:
    cfg = ctx.cfg
    splits = ("train", "val") if cfg.run.split == "both" else (cfg.run.split,)
    counts = worker_counts(cpu_cores())
    steps = (cfg.measure.steps if cfg.measure.steps is not None else 50) + cfg.measure.warmup
    out = []
    for split in splits:
        with ctx.bar(total=steps * len(counts), desc=f"scaling {name} {split}", unit="batch") as bar:
            for w in counts:
                try:
                    rec = _point(ctx, name, split, w, bar)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # noqa: BLE001 - one failed point is a record, the curve goes on
                    first = (str(e).strip().splitlines() or [""])[0]
                    ctx.log(f"error: scaling {name} {split} at {w} workers: {type(e).__name__}: {first}")
                    rec = ctx.record("scaling", loader=name, variant=split, metrics={"workers": w},
                                     config=ctx.resolved(name, workers=w), status="error", error=f"{type(e).__name__}: {first}")
                m = rec["metrics"]
                if rec["status"] == "ok":
                    ctx.log(f"scaling {name} {split}: {w} workers {m['images_per_sec']:,.0f} img/s")
                out.append(rec)
    return out
