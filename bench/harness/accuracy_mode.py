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
from .honesty import learning_warnings, schedule_warnings
from .preempt import Preempted, StopFlag

AGREE_EVERY = {"cpu": 1, "cuda": 16}  # steps between the ranks' stop agreements (see preempt.py)

FINAL = ("top1", "top5", "top1_ema", "top5_ema", "loss", "wall_s", "val_samples", "samples_seen")


def ckpt_name(arch: str, name: str) -> str:
    return f"{arch}-{name}-last.pt"


def checkpoint_path(cfg, arch: str, name: str) -> Path | None:
    return Path(cfg.checkpoint.checkpoint_dir) / ckpt_name(arch, name) if cfg.checkpoint.checkpoint_dir else None


def run(ctx, name: str, arch: str) -> list[dict]:
    cfg, log, comm = ctx.cfg, ctx.log, ctx.comm
    state = train_state(ctx, arch, res_at(0, cfg.schedule, cfg.data.res), init=cfg.checkpoint.init, freeze=cfg.checkpoint.freeze_backbone)
    ckpt = checkpoint_path(cfg, arch, name)
    resume = str(ckpt) if cfg.checkpoint.resume == "auto" and ckpt and ckpt.exists() else cfg.checkpoint.resume
    if resume and resume != "auto":
        checkpoint.load(resume, state)
        where = f"epoch {state.epoch}" if state.batch == 0 else f"batch {state.batch} of epoch {state.epoch + 1}"
        log(f"resumed from {resume} after {where}")

    records = []

    def about(arch, epoch):  # what a checkpoint says about its network
        return {"arch": arch, "classes": ctx.dataset.classes, "res": res_at(epoch, cfg.schedule, cfg.data.res)}

    config = ctx.resolved(name, arch, **describe_model(cfg, arch))
    spec = ctx.spec(name, res=res_at(state.epoch, cfg.schedule, cfg.data.res))
    with loaders.build(name, "train", ctx.dataset, spec) as train, loaders.build(name, "val", ctx.dataset, spec) as val, \
            ctx.bar(total=cfg.schedule.epochs, initial=state.epoch, desc=f"{arch} / {name}", unit="epoch") as bar, \
            StopFlag(comm, AGREE_EVERY.get(ctx.device.type, 1), log) as flag:
        flag.common_batches = int(min(comm.gather(len(train))))

        def on_epoch(state, m):
            records.append(ctx.record("epoch", loader=name, arch=arch, metrics=m, config=config))
            if ckpt and comm.is_main:  # self-describing, as --save-checkpoint's: bench.visualize reads either
                checkpoint.save(ckpt, state, cfg.flat(), extra=about(arch, state.epoch))
            comm.barrier()  # nobody reads a checkpoint that is still being written
            bar.update()
            bar.set_postfix(top1=m["top1"], loss=m["train_loss"])
            if comm.is_main:
                log(f"epoch {state.epoch}/{cfg.schedule.epochs} res {m['res']}: loss {m['train_loss']:.3f} top1 {m['top1']:.3f} "
                    f"top5 {m['top5']:.3f} ({m['wall_s']:.1f}s)")

        if not fit(state, train, val, cfg.schedule, cfg.eval, comm, on_epoch, max_steps=cfg.measure.steps, stop=flag.stop):
            raise preempted(ctx, state, ckpt or Path("checkpoints") / ckpt_name(arch, name), flag.signum, records)
    final = final_metrics(state)
    records.append(ctx.record("accuracy", loader=name, arch=arch, metrics=final, config=config,
                              warnings=schedule_warnings(cfg.schedule) + learning_warnings(final, ctx.dataset.num_classes)))
    if cfg.checkpoint.save_checkpoint and comm.is_main:
        checkpoint.save(cfg.checkpoint.save_checkpoint, state, cfg.flat(), extra=about(arch, cfg.schedule.epochs))
    return records


def final_metrics(state) -> dict:
    last = state.history[-1] if state.history else {}
    final = {k: last[k] for k in FINAL if k in last}
    ips = [h["images_per_sec"] for h in state.history if h.get("images_per_sec")]
    eval_ips = [h["eval_images_per_sec"] for h in state.history if h.get("eval_images_per_sec")]
    final.update(epochs=state.epoch, images_per_sec=round(sum(ips) / len(ips), 2) if ips else None,
                 eval_images_per_sec=round(sum(eval_ips) / len(eval_ips), 2) if eval_ips else None,
                 params=sum(p.numel() for p in unwrap(state.model).parameters()),
                 trainable_params=sum(p.numel() for p in unwrap(state.model).parameters() if p.requires_grad))
    return final


def describe_model(cfg, arch: str) -> dict:
    """What the record's config says about the network: the variant models.create built at the
    first train resolution ('small' | 'imagenet' | 'native') and the transfer arm: 'frozen'
    (--init, only the classifier trains), 'full' (--init, every layer) or 'scratch' (fresh weights,
    --transfer-baseline); None for an ordinary run, which the per-architecture table shows."""
    import models

    ck = cfg.checkpoint
    transfer = ("frozen" if ck.freeze_backbone else "full") if ck.init else "scratch" if ck.transfer_baseline else None
    return {"model_variant": models.variant(arch, res_at(0, cfg.schedule, cfg.data.res)), "transfer": transfer}


def preempted(ctx, state, path: Path, signum: int, records: list) -> Preempted:
    """Write the mid-epoch checkpoint (rank 0) and say in one line where the run stopped."""
    if ctx.comm.is_main:
        checkpoint.save(path, state, ctx.cfg.flat())
    ctx.comm.barrier()
    where = f"at epoch {state.epoch + 1}, batch {state.batch}" if state.batch else f"after epoch {state.epoch}"
    how = "--resume auto" if ctx.cfg.checkpoint.checkpoint_dir else f"--checkpoint-dir {path.parent} --resume auto"
    e = Preempted(f"stopped by {signal_name(signum)} {where}: checkpoint written to {path}; continue with {how}", signum)
    e.records = records  # the epochs finished before the signal are records all the same
    return e


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name
