"""`--mode accuracy`: E epochs of training, evaluation after each, one record per epoch and a
final one; a checkpoint each epoch (rank 0), resume, transfer learning; the same code under
torchrun, with counts summed over ranks."""
from __future__ import annotations

from pathlib import Path

import loaders

from ..training import checkpoint
from ..training.checkpoint import unwrap
from ..training.loop import fit
from ..training.state import res_at
from .build import train_state

FINAL = ("top1", "top5", "top1_ema", "top5_ema", "loss", "wall_s", "val_samples", "samples_seen")


def checkpoint_path(cfg, arch: str, name: str) -> Path | None:
    return Path(cfg.checkpoint.checkpoint_dir) / f"{arch}-{name}-last.pt" if cfg.checkpoint.checkpoint_dir else None


def run(ctx, name: str, arch: str) -> list[dict]:
    cfg, log, comm = ctx.cfg, ctx.log, ctx.comm
    state = train_state(ctx, arch, res_at(0, cfg.schedule, cfg.data.res), init=cfg.checkpoint.init, freeze=cfg.checkpoint.freeze_backbone)
    ckpt = checkpoint_path(cfg, arch, name)
    resume = cfg.checkpoint.resume
    if resume == "auto":
        resume = str(ckpt) if ckpt and ckpt.exists() else None
    if resume:
        checkpoint.load(resume, state)
        log(f"resumed from {resume} after epoch {state.epoch}")

    records = []
    spec = ctx.spec(name, res=res_at(state.epoch, cfg.schedule, cfg.data.res))
    with loaders.build(name, "train", ctx.dataset, spec) as train, loaders.build(name, "val", ctx.dataset, spec) as val, \
            ctx.bar(total=cfg.schedule.epochs, initial=state.epoch, desc=f"{arch} / {name}", unit="epoch") as bar:

        def on_epoch(state, m):
            records.append(ctx.record("epoch", loader=name, arch=arch, metrics=m))
            if ckpt and comm.is_main:
                checkpoint.save(ckpt, state, cfg.flat())
            comm.barrier()  # nobody reads a checkpoint that is still being written
            bar.update()
            bar.set_postfix(top1=m["top1"], loss=m["train_loss"])
            if comm.is_main:
                log(f"epoch {state.epoch}/{cfg.schedule.epochs} res {m['res']}: loss {m['train_loss']:.3f} top1 {m['top1']:.3f} "
                    f"top5 {m['top5']:.3f} ({m['wall_s']:.1f}s)")

        fit(state, train, val, cfg.schedule, cfg.eval, comm, on_epoch, max_steps=cfg.measure.steps)
    last = state.history[-1] if state.history else {}
    final = {k: last[k] for k in FINAL if k in last}
    ips = [h["images_per_sec"] for h in state.history if h.get("images_per_sec")]
    eval_ips = [h["eval_images_per_sec"] for h in state.history if h.get("eval_images_per_sec")]
    final.update(epochs=state.epoch, images_per_sec=round(sum(ips) / len(ips), 2) if ips else None,
                 eval_images_per_sec=round(sum(eval_ips) / len(eval_ips), 2) if eval_ips else None,
                 params=sum(p.numel() for p in unwrap(state.model).parameters()))
    records.append(ctx.record("accuracy", loader=name, arch=arch, metrics=final))
    if cfg.checkpoint.save_checkpoint and comm.is_main:
        checkpoint.save(cfg.checkpoint.save_checkpoint, state, cfg.flat(),
                        extra={"arch": arch, "classes": ctx.dataset.classes, "res": res_at(cfg.schedule.epochs, cfg.schedule, cfg.data.res)})
    return records
