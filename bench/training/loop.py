"""The training loop: one for every loader. Loaders hand over device-ready batches (normalised,
channels-last, in the AMP dtype), so nothing here moves, converts or asks which backend it has.

    fit(state, train_loader, val_loader, cfg.schedule, cfg.eval, comm, on_epoch)

channels_last + autocast (bf16; fp16 with a GradScaler), SGD with momentum and no weight decay
on BN/bias (state.py), label smoothing, a per-iteration LR (triangular as in FFCV's ImageNet
recipes, step, cosine), progressive resizing at epoch boundaries, flip-TTA, EMA. Under DDP the
counts are summed over ranks by the communicator, so every figure is over the whole split.
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn as nn

from ..measure import StepMeter, timed_batches
from .compute import autocast
from .state import TrainState, lr_factor, res_at


def train_step(state: TrainState, images, labels, lr: float) -> torch.Tensor:
    for g in state.optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    with autocast(state.device, state.amp):
        loss = state.criterion(state.model(images), labels)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    return loss.detach()  # no .item(): a host sync per step would serialise the GPU


def train_one_epoch(state: TrainState, loader, schedule, max_steps: int | None = None, stop=None, per_epoch: int | None = None) -> dict:
    """One pass over `loader` from batch state.batch on (0 unless resumed mid-epoch), or up to
    max_steps batches: loss, samples and step timing. `stop()` is asked after every step: when
    it says so, the pass ends there with state.batch and state.partial telling where it stood.
    `per_epoch`: the steps an epoch has for the LR schedule (under DDP the same on every rank,
    whose shards may differ by a batch: else the replicas would step with different LRs)."""
    state.model.train()
    meter = StepMeter(device=state.device)
    per_epoch = max(per_epoch or len(loader), 1)
    losses = [torch.tensor(x, device=state.device) for x in state.partial["losses"]]  # a resumed epoch's earlier steps (where the new ones are)
    seen, start = state.partial["seen"], state.batch
    steps = None if max_steps is None else max(0, max_steps - start)
    # Ranks may hold one batch more than others (nothing is padded): DDP's Join lets a rank
    # that ran out shadow the others' all-reduces instead of hanging them.
    with uneven_inputs(state.model):
        for i, (images, labels) in enumerate(timed_batches([] if steps == 0 else [iter(loader)], meter, max_steps=steps), start):
            lr = state.base_lr * lr_factor(state.epoch + i / per_epoch, schedule)
            losses.append(train_step(state, images, labels, lr))
            seen += int(labels.shape[0])
            state.batch = i + 1
            if stop is not None and stop(state.batch):
                state.partial = {"losses": [float(x) for x in losses], "seen": seen, "wall_s": state.partial["wall_s"]}
                return {"interrupted": True}
    loss = torch.stack(losses).float().mean().item() if losses else float("nan")
    return {"train_loss": round(loss, 4), "samples_seen": seen, **meter.metrics()}


def uneven_inputs(model):
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        from torch.distributed.algorithms.join import Join

        return Join([model])
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, amp, tta: bool, comm, max_steps: int | None = None) -> dict:
    """Top-1/5 and loss over the loader (flip-TTA: logits of image + mirrored image).

    Counts accumulate on the device and are read once per pass (a read per batch would sync
    the GPU every batch). Under DDP each rank evaluates its own shard with the bare model (no
    collectives, so uneven shards cannot hang) and the communicator sums the counts: the
    result is over exactly the val split, nothing padded or counted twice.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    model.eval()
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # correct1, correct5, loss_sum
    samples = 0
    meter = StepMeter(device=device)
    crit = nn.CrossEntropyLoss(reduction="sum")
    for images, labels in timed_batches([iter(loader)], meter, max_steps=max_steps):
        with autocast(device, amp):
            logits = model(images)
            if tta:
                logits = logits + model(torch.flip(images, dims=[3]))
        logits = logits.float()
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        counts += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), crit(logits, labels)]).to(torch.float64)
        samples += int(labels.shape[0])
    timing = meter.metrics()
    ips = timing["images_per_sec"]
    c1, c5, loss = comm.sum(counts).tolist()
    n = int(comm.sum(samples))
    return {"top1": round(c1 / max(n, 1), 4), "top5": round(c5 / max(n, 1), 4), "loss": round(loss / max(n, 1), 4),
            "val_samples": n, "eval_images_per_sec": round(comm.sum(ips), 2), "eval_steps": timing["steps"]}


def over_ranks(m: dict, comm) -> dict:
    """A rank's step metrics as the run's: images/sec and samples summed over ranks, the
    data-wait share per rank beside this rank's."""
    out = dict(m)
    if comm.world > 1:
        out["images_per_sec"] = round(comm.sum(m.get("images_per_sec", 0.0)), 2)
        if "samples_seen" in m:
            out["samples_seen"] = int(comm.sum(m["samples_seen"]))
        out["data_wait_frac_per_rank"] = [round(x, 4) for x in comm.gather(m.get("data_wait_frac") or 0.0)]
    return out


def fit(state: TrainState, train_loader, val_loader, schedule, evaluation, comm, on_epoch, max_steps: int | None = None,
        stop=None) -> bool:
    """Train from (state.epoch, state.batch) to schedule.epochs, evaluating after each epoch;
    on_epoch(state, metrics) after each (records, checkpoints: the caller's). `stop(batch)`
    is asked after every step and at every epoch start; True: return False at once, with state
    saying where the run stood (the caller writes the checkpoint). Returns True when done."""
    wall = state.history[-1]["wall_s"] if state.history else 0.0
    per_epoch = int(max(comm.gather(len(train_loader))))  # the longest shard's batches, on every rank
    while state.epoch < schedule.epochs:
        if stop is not None and state.batch == 0 and stop(0):
            return False
        t0 = time.perf_counter()
        res = res_at(state.epoch, schedule, train_loader.spec.res)
        if res != train_loader.res:
            train_loader.set_resolution(res)  # takes effect at this epoch's first batch
        train_loader.set_epoch(state.epoch, start_batch=state.batch)
        tm = train_one_epoch(state, train_loader, schedule, max_steps, stop, per_epoch)
        if tm.get("interrupted"):
            state.partial["wall_s"] += time.perf_counter() - t0
            return False
        tm = over_ranks(tm, comm)
        if not math.isfinite(tm["train_loss"]):  # every later epoch would be noise: stop, the sweep records why
            raise FloatingPointError(f"training diverged in epoch {state.epoch + 1}: the train loss is {tm['train_loss']}; "
                                     "lower --lr (a network without BatchNorm, such as alexnet, needs about a tenth)")
        ev = evaluate(state.model, val_loader, state.device, state.amp, evaluation.tta, comm)
        if state.ema is not None:
            ema = evaluate(state.ema.module, val_loader, state.device, state.amp, evaluation.tta, comm)
            ev.update(top1_ema=ema["top1"], top5_ema=ema["top5"])
        wall += time.perf_counter() - t0 + state.partial["wall_s"]
        res_done = res
        state.end_epoch()
        keep = ("images_per_sec", "steady_images_per_sec", "data_wait_frac", "data_wait_frac_per_rank", "samples_seen", "stall_s", "epoch_start_wait_s")
        metrics = {"epoch": state.epoch, "res": res_done, "train_loss": tm["train_loss"], **ev, "wall_s": round(wall, 2),
                   **{k: tm[k] for k in keep if k in tm}}
        state.history.append(metrics)
        on_epoch(state, metrics)
    return True
