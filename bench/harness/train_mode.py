"""`--mode train`: training images/sec per architecture and loader, beside the compute-only
ceiling (the registry's ceiling backend) for the same architecture and settings."""
from __future__ import annotations

import loaders

from ..measure import StepMeter, timed_batches
from ..training.loop import over_ranks, train_step
from .build import train_state
from .context import passes
from .honesty import window_warnings

DEFAULT_STEPS = 30


def throughput(ctx, name: str, arch: str, steps: int) -> tuple[dict, dict, dict]:
    """(step metrics, backend settings, backend facts) of `steps` training steps on `name`."""
    cfg = ctx.cfg
    state = train_state(ctx, arch, cfg.data.res)
    with loaders.build(name, "train", ctx.dataset, ctx.spec(name)) as loader:
        meter = StepMeter(warmup=cfg.measure.warmup, device=ctx.device)
        # Every rank runs the same number of steps (cycling epochs), so no rank waits alone.
        seconds = None if ctx.comm.world > 1 else cfg.measure.seconds
        with ctx.bar(total=cfg.measure.warmup + steps, desc=f"train {arch} / {name}", unit="step") as bar:
            for images, labels in timed_batches(passes(loader), meter, max_steps=steps, seconds=seconds):
                train_step(state, images, labels, state.base_lr * 0.1)
                bar.update()
        return over_ranks(meter.metrics(), ctx.comm), loader.describe(), loader.facts()


def run(ctx, name: str, arch: str) -> list[dict]:
    steps = ctx.cfg.measure.steps if ctx.cfg.measure.steps is not None else DEFAULT_STEPS
    ceiling = loaders.ceiling()
    computed = ctx.memo.setdefault("compute_ips", {})  # arch -> the ceiling's images/sec in this run
    if arch not in computed and name != ceiling:
        computed[arch] = throughput(ctx, ceiling, arch, steps)[0]["images_per_sec"]
    metrics, settings, facts = throughput(ctx, name, arch, steps)
    if name == ceiling:
        computed[arch] = metrics["images_per_sec"]
    compute = computed.get(arch)
    if compute:
        metrics.update(compute_ips=compute, ratio_to_synthetic=round(metrics["images_per_sec"] / compute, 4))
    metrics["backend"] = facts
    return [ctx.record("train", loader=name, arch=arch, metrics=metrics, config=ctx.resolved(name, arch, backend=settings),
                       warnings=window_warnings(metrics, ctx.cfg.measure.warmup))]
