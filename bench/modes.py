"""What each `bench.run --mode` measures. Each function returns a list of result records."""
from __future__ import annotations

import time

import torch
from tqdm import tqdm

import loaders
from loaders import LoaderSpec

from . import train as T
from .measure import StepMeter, timed_batches
from .results import make_record


class Context:
    """Everything a measurement needs that is resolved once per invocation."""

    def __init__(self, cfg, dataset, device, amp, workers, threads, rank=0, world=1, log=T.log_stderr):
        self.cfg, self.dataset, self.device, self.amp = cfg, dataset, device, amp
        self.workers, self.threads, self.rank, self.world, self.log = workers, threads, rank, world, log
        # Single-process defaults; bench.distributed replaces them under torchrun.
        self.wrap = lambda model: model
        self.sum = lambda x: x
        self.gather = lambda x: [x]
        self.barrier = lambda: None

    def spec(self, loader_name: str, res: int | None = None) -> LoaderSpec:
        c = self.cfg
        return LoaderSpec(
            batch_size=c.batch_size, res=res or c.res, val_res=c.val_res or c.res, crop_ratio=c.crop_ratio, scale=(c.scale_min, 1.0),
            workers=self.workers, prefetch=c.prefetch, device=str(self.device),
            dtype={None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[self.amp],
            channels_last=c.channels_last, seed=c.seed, rank=self.rank, world=self.world,
            options=loaders.options_for(loader_name, c.options()),
        )

    def resolved(self, **extra) -> dict:
        return {**self.cfg.as_dict(), "device": str(self.device), "amp": str(self.amp).replace("torch.", "") if self.amp else "off",
                "workers": self.workers, "threads": self.threads, "world_size": self.world, **extra}

    def record(self, kind, loader=None, arch=None, variant=None, metrics=None, config=None, **kw):
        return make_record(kind, loader=loader, arch=arch, variant=variant, dataset=self.dataset.describe(),
                           config=config or self.resolved(), metrics=metrics, **kw)

    def ceiling(self) -> float | None:
        """This machine's latest decode ceiling at the train resolution (see bench.ceiling)."""
        from .ceiling import latest_ceiling
        from .results import fingerprint
        from .results import default_path

        return latest_ceiling(self.cfg.out or default_path(), fingerprint()["id"], self.cfg.res)

    def bar(self, **kw):
        return tqdm(disable=not self.cfg.progress or self.rank != 0, leave=False, **kw)


def steps_of(cfg, default: int) -> int:
    return cfg.steps if cfg.steps is not None else default


# -- loader: loader-only throughput ------------------------------------------------------
def loader_mode(ctx: Context, name: str) -> list[dict]:
    cfg = ctx.cfg
    splits = ("train", "val") if cfg.split == "both" else (cfg.split,)
    out = []
    for split in splits:
        t0 = time.perf_counter()
        with loaders.build(name, split, ctx.dataset, ctx.spec(name)) as loader:
            build_s = time.perf_counter() - t0
            steps = steps_of(cfg, 50)
            meter = StepMeter(warmup=cfg.warmup, device=ctx.device)
            with ctx.bar(total=cfg.warmup + steps, desc=f"{name} {split}", unit="batch") as bar:
                t_first = None
                for images, _ in timed_batches(loader, meter, max_steps=steps, seconds=cfg.seconds):
                    t_first = t_first or time.perf_counter() - t0
                    bar.update()
            metrics = {**meter.metrics(), "build_s": round(build_s, 3), "first_batch_s": round(t_first or 0, 3)}
            metrics.pop("data_wait_frac", None)  # the whole step is loading here
            ceiling = ctx.ceiling()
            if ceiling and split == "train" and name != "synthetic":
                metrics.update(ceiling=ceiling, ceiling_ratio=round(metrics["images_per_sec"] / ceiling, 4))
            out.append(ctx.record("loader", loader=name, variant=split, metrics=metrics, config=ctx.resolved(backend=loader.describe())))
    return out


# -- train: end-to-end training throughput, and its ratio to the synthetic ceiling -------------
def _train_throughput(ctx: Context, name: str, arch: str, steps: int) -> tuple[dict, dict]:
    cfg = ctx.cfg
    T.seed_everything(cfg.seed)
    model = T.build_model(arch, ctx.dataset.num_classes, cfg.res, ctx.device, cfg.channels_last, cfg.blurpool, cfg.compile, ctx.log)
    state = T.make_state(ctx.wrap(model), cfg, ctx.device, ctx.amp, ctx.world)
    with loaders.build(name, "train", ctx.dataset, ctx.spec(name)) as loader:
        meter = StepMeter(warmup=cfg.warmup, device=ctx.device)
        # Every rank runs the same number of steps (cycling epochs), so no rank waits alone.
        with ctx.bar(total=cfg.warmup + steps, desc=f"train {arch} / {name}", unit="step") as bar:
            for images, labels in timed_batches(loader, meter, max_steps=steps, seconds=None if ctx.world > 1 else cfg.seconds):
                T.train_step(state, images, labels, state.base_lr * 0.1)
                bar.update()
        m = meter.metrics()
        if ctx.world > 1:
            m["data_wait_frac_per_rank"] = [round(x, 4) for x in ctx.gather(m.get("data_wait_frac", 0.0))]
            m["images_per_sec"] = round(ctx.sum(m["images_per_sec"]), 2)  # summed over ranks
        return m, loader.describe()


def train_mode(ctx: Context, name: str, arch: str, ceiling_cache: dict) -> list[dict]:
    steps = steps_of(ctx.cfg, 30)
    if arch not in ceiling_cache and name != "synthetic":
        ceiling_cache[arch] = _train_throughput(ctx, "synthetic", arch, steps)[0]["images_per_sec"]
    metrics, backend = _train_throughput(ctx, name, arch, steps)
    if name == "synthetic":
        ceiling_cache[arch] = metrics["images_per_sec"]
    compute = ceiling_cache.get(arch)
    if compute:
        metrics.update(compute_ips=compute, ratio_to_synthetic=round(metrics["images_per_sec"] / compute, 4))
    return [ctx.record("train", loader=name, arch=arch, metrics=metrics, config=ctx.resolved(backend=backend))]


# -- eval: val throughput and accuracy of given (or fresh) weights ----------------------------
def eval_mode(ctx: Context, name: str, arch: str) -> list[dict]:
    cfg = ctx.cfg
    T.seed_everything(cfg.seed)
    model = T.build_model(arch, ctx.dataset.num_classes, cfg.val_res or cfg.res, ctx.device, cfg.channels_last, cfg.blurpool, cfg.compile, ctx.log)
    if cfg.init:
        T.init_from(model, cfg.init, ctx.log)
    with loaders.build(name, "val", ctx.dataset, ctx.spec(name)) as loader:
        m = T.evaluate(model, loader, ctx.device, ctx.amp, cfg.tta, max_steps=cfg.steps, reduce=ctx.sum if ctx.world > 1 else None)
    m["images_per_sec"] = m.pop("eval_images_per_sec")
    return [ctx.record("eval", loader=name, arch=arch, metrics=m)]


# -- accuracy: train E epochs, evaluate each, checkpoint, resume ----------------------------
def accuracy_mode(ctx: Context, name: str, arch: str) -> list[dict]:
    from .fit import fit

    return fit(ctx, name, arch)
