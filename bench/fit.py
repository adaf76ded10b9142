"""Accuracy runs: E epochs of training, evaluation after each, one record per epoch and a
final one; checkpoints each epoch (rank 0), resume, transfer learning; the same code under
torchrun, with counts summed over ranks."""
from __future__ import annotations

import time
from pathlib import Path

import loaders

from . import arch_facts
from . import train as T


def _checkpoint_path(cfg, arch, name) -> Path | None:
    return Path(cfg.checkpoint_dir) / f"{arch}-{name}-last.pt" if cfg.checkpoint_dir else None


def _model_and_state(ctx, arch):
    cfg, log = ctx.cfg, ctx.log
    T.seed_everything(cfg.seed)  # same init on every rank (DDP also broadcasts rank 0's)
    model = T.build_model(arch, ctx.dataset.num_classes, T.res_at(0, cfg), ctx.device, cfg.channels_last, cfg.blurpool, False, log)
    head = None
    if cfg.init:
        head = T.init_from(model, cfg.init, log)
        if cfg.freeze_backbone:
            T.freeze_backbone(model, head)
    if cfg.compile:
        model = T.try_compile(model, ctx.device, T.res_at(0, cfg), cfg.channels_last, log)
    return T.make_state(ctx.wrap(model), cfg, ctx.device, ctx.amp, ctx.world, head=head)


def fit(ctx, name: str, arch: str) -> list[dict]:
    cfg, log = ctx.cfg, ctx.log
    state = _model_and_state(ctx, arch)
    ckpt = _checkpoint_path(cfg, arch, name)
    resume = cfg.resume
    if resume == "auto":
        resume = str(ckpt) if ckpt and ckpt.exists() else None
    if resume:
        T.load_checkpoint(resume, state)
        log(f"resumed from {resume} after epoch {state.epoch}")
    reduce = ctx.sum if ctx.world > 1 else None
    config = ctx.resolved(**arch_facts.config_extras(cfg, arch))  # + model_variant, transfer

    records = []
    spec = ctx.spec(name, res=T.res_at(state.epoch, cfg))
    with loaders.build(name, "train", ctx.dataset, spec) as train_loader, loaders.build(name, "val", ctx.dataset, spec) as val_loader:
        wall = state.history[-1]["wall_s"] if state.history else 0.0
        with ctx.bar(total=cfg.epochs, initial=state.epoch, desc=f"{arch} / {name}", unit="epoch") as bar:
            while state.epoch < cfg.epochs:
                t0 = time.perf_counter()
                res = T.res_at(state.epoch, cfg)
                if res != train_loader.res:
                    train_loader.set_resolution(res)
                train_loader.set_epoch(state.epoch)
                tm = T.train_one_epoch(state, train_loader, cfg, max_steps=cfg.steps)
                ev = T.evaluate(state.model, val_loader, ctx.device, ctx.amp, cfg.tta, reduce=reduce)
                if state.ema is not None:
                    ema = T.evaluate(state.ema.module, val_loader, ctx.device, ctx.amp, cfg.tta, reduce=reduce)
                    ev.update(top1_ema=ema["top1"], top5_ema=ema["top5"])
                state.epoch += 1
                wall += time.perf_counter() - t0
                metrics = {"epoch": state.epoch, "res": res, "train_loss": tm["train_loss"], **ev, "wall_s": round(wall, 2),
                           "images_per_sec": round(ctx.sum(tm["images_per_sec"]), 2),  # summed over ranks
                           "data_wait_frac": tm.get("data_wait_frac"), "samples_seen": int(ctx.sum(tm["samples_seen"]))}
                if ctx.world > 1:
                    metrics["data_wait_frac_per_rank"] = [round(x, 4) for x in ctx.gather(tm.get("data_wait_frac") or 0.0)]
                state.history.append(metrics)
                records.append(ctx.record("epoch", loader=name, arch=arch, metrics=metrics, config=config))
                if ckpt and ctx.rank == 0:
                    T.save_checkpoint(ckpt, state, cfg)
                ctx.barrier()  # nobody reads a checkpoint that is still being written
                bar.update()
                bar.set_postfix(top1=ev["top1"], loss=tm["train_loss"])
                if ctx.rank == 0:
                    log(f"epoch {state.epoch}/{cfg.epochs} res {res}: loss {tm['train_loss']:.3f} top1 {ev['top1']:.3f} "
                        f"top5 {ev['top5']:.3f} ({wall:.1f}s)")
    last = state.history[-1] if state.history else {}
    final = {k: last[k] for k in ("top1", "top5", "top1_ema", "top5_ema", "loss", "wall_s", "val_samples", "samples_seen") if k in last}
    ips = [h["images_per_sec"] for h in state.history if h.get("images_per_sec")]
    final.update(epochs=state.epoch, images_per_sec=round(sum(ips) / len(ips), 2) if ips else None)
    evs = [h["eval_images_per_sec"] for h in state.history if h.get("eval_images_per_sec")]
    final.update(eval_images_per_sec=round(sum(evs) / len(evs), 2) if evs else None, **arch_facts.params(state.model))
    records.append(ctx.record("accuracy", loader=name, arch=arch, metrics=final, config=config))
    if cfg.save_checkpoint and ctx.rank == 0:
        T.save_checkpoint(cfg.save_checkpoint, state, cfg, extra={"arch": arch, "classes": ctx.dataset.classes, "res": T.res_at(cfg.epochs, cfg)})
    return records
