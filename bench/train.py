"""The training core: one loop for every loader (the loader hands over device-ready batches).

channels_last + autocast (bf16 on CPU; bf16, or fp16 with GradScaler, on CUDA), SGD with
momentum and no weight decay on BN/bias, label smoothing, per-iteration LR (triangular as in
FFCV's ImageNet recipes, step, cosine), progressive resizing, flip-TTA, EMA, checkpoints each
epoch and a resume that continues to the same result.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import models

from .measure import StepMeter, timed_batches


# -- devices, precision, threads ---------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but CUDA is not available here; use --device cpu (or auto)")
    return dev


def cpu_has_bf16() -> bool:
    """Native bf16 (AVX512-BF16 or AMX): there bf16 autocast is faster than fp32; elsewhere it
    is emulated and slower, so `auto` falls back to fp32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- model and optimiser ------------------------------------------------------------------
def build_model(arch: str, num_classes: int, res: int, device, channels_last=True, blurpool=False, compile=False, log=print):
    model = models.create(arch, num_classes, res=res, blurpool=blurpool).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = try_compile(model, device, res, channels_last, log)
    return model


class CompileFallback(nn.Module):
    """torch.compile'd model that falls back to eager, with one message, if compiling fails.

    Compilation happens on the first real batch (in the caller's warm-up), with the real
    shape and mode: checking it on a dummy batch would compile for the wrong shape and mode
    and recompile on the first step.
    """

    def __init__(self, model: nn.Module, log=print):
        super().__init__()
        self.module = model
        self.compiled = torch.compile(model)
        self.failed = False
        self.log = log

    def forward(self, *args, **kw):
        if not self.failed:
            try:
                return self.compiled(*args, **kw)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run eager
                self.failed = True
                self.log(f"note: torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); running eager")
        return self.module(*args, **kw)


def try_compile(model, device=None, res=None, channels_last=None, log=print):
    return CompileFallback(model, log)


def param_groups(model: nn.Module, weight_decay: float, backbone_lr: float = 1.0, head: str | None = None):
    """No weight decay on BN and bias (1-d params); optional LR multiplier for all but the head."""
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1
        is_head = head is not None and (name.startswith(head + ".") or f".{head}." in name)
        mult = 1.0 if (head is None or is_head) else backbone_lr
        key = (decay, mult)
        groups.setdefault(key, {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_mult": mult})
        groups[key]["params"].append(p)
    return list(groups.values())


def lr_factor(epoch: float, cfg) -> float:
    """Learning-rate multiplier at a (fractional) epoch."""
    E = cfg.epochs
    if cfg.lr_schedule == "triangular":  # FFCV: linear up to the peak, linear down to 0
        peak = min(cfg.lr_peak_epoch, E)
        return float(np.interp(epoch, [0, peak, E], [1e-4, 1.0, 0.0]))
    warm = cfg.warmup_epochs
    if warm > 0 and epoch < warm:
        return epoch / warm
    if cfg.lr_schedule == "step":
        return cfg.step_ratio ** int(epoch // cfg.step_length)
    if cfg.lr_schedule == "cosine":
        t = (epoch - warm) / max(E - warm, 1e-9)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def res_at(epoch: int, cfg) -> int:
    """FFCV's progressive resizing: min_res until start_ramp, then linear to max_res at
    end_ramp, rounded to multiples of 32."""
    if cfg.min_res is None or cfg.max_res is None:
        return cfg.res
    start, end = cfg.start_ramp or 0, cfg.end_ramp or cfg.epochs
    if epoch <= start:
        return cfg.min_res
    if epoch >= end:
        return cfg.max_res
    r = np.interp(epoch, [start, end], [cfg.min_res, cfg.max_res])
    return int(round(r / 32)) * 32


# -- steps ----------------------------------------------------------------------------------
@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: torch.dtype | None
    base_lr: float
    criterion: nn.Module
    ema: nn.Module | None = None
    epoch: int = 0  # epochs completed
    history: list = field(default_factory=list)


def make_state(model, cfg, device, amp, world: int = 1, head: str | None = None) -> TrainState:
    base_lr = cfg.lr * cfg.batch_size * world / 256
    groups = param_groups(model, cfg.weight_decay, cfg.backbone_lr, head)
    opt = torch.optim.SGD(groups, lr=base_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == torch.float16))
    ema = None
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    crit = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return TrainState(model, opt, scaler, device, amp, base_lr, crit, ema)


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
    return loss.detach()


def train_one_epoch(state: TrainState, loader, cfg, meter: StepMeter | None = None, max_steps=None, progress=None) -> dict:
    """One pass over `loader` (or max_steps). Returns loss and timing metrics."""
    state.model.train()
    meter = meter or StepMeter(warmup=0, device=state.device)
    n_iters = len(loader) if max_steps is None else min(len(loader), max_steps)
    losses, seen = [], 0
    bar = progress(total=n_iters, desc=f"epoch {state.epoch + 1}", unit="step", leave=False) if progress else None
    # Ranks may hold one batch more than others (nothing is padded): DDP's Join lets a rank
    # that ran out shadow the others' all-reduces instead of hanging them.
    with uneven_inputs(state.model):
        for i, (images, labels) in enumerate(timed_batches(loader, meter, max_steps=None, epochs_cap=1)):
            lr = state.base_lr * lr_factor(state.epoch + i / max(len(loader), 1), cfg)
            losses.append(train_step(state, images, labels, lr))
            seen += int(labels.shape[0])
            if bar:
                bar.update()
            if max_steps is not None and i + 1 >= max_steps:
                meter.stop()
                break
    if bar:
        bar.close()
    loss = torch.stack(losses).float().mean().item() if losses else float("nan")
    return {"train_loss": round(loss, 4), "samples_seen": seen, **meter.metrics()}


def uneven_inputs(model):
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        from torch.distributed.algorithms.join import Join

        return Join([model])
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, amp, tta: bool = False, max_steps=None, reduce=None) -> dict:
    """Top-1/5 and loss over the loader (flip-TTA: logits of image + mirrored image).

    Under DDP each rank evaluates its own shard with the bare model (no collectives, so
    uneven shards cannot hang) and `reduce` sums the raw counts over ranks: the result is
    over exactly the val split, nothing padded or counted twice.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # no collectives in evaluation (see above)
    model.eval()
    counts = torch.zeros(4, dtype=torch.float64)  # correct1, correct5, loss_sum, samples
    meter = StepMeter(warmup=0, device=device)
    crit = nn.CrossEntropyLoss(reduction="sum")
    for images, labels in timed_batches(loader, meter, max_steps=max_steps, epochs_cap=1):
        with autocast(device, amp):
            logits = model(images)
            if tta:
                logits = logits + model(torch.flip(images, dims=[3]))
        logits = logits.float()
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        counts += torch.tensor([hit[:, 0].sum().item(), hit.any(dim=1).sum().item(), crit(logits, labels).item(), labels.shape[0]],
                               dtype=torch.float64)
    ips = meter.metrics()["images_per_sec"]
    if reduce is not None:
        counts, ips = reduce(counts), reduce(torch.tensor([ips], dtype=torch.float64)).item()
    c1, c5, loss, n = counts.tolist()
    n = max(n, 1)
    return {"top1": round(c1 / n, 4), "top5": round(c5 / n, 4), "loss": round(loss / n, 4), "val_samples": int(counts[3]),
            "eval_images_per_sec": round(ips, 2)}


# -- checkpoints ------------------------------------------------------------------------------
def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / CompileFallback / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None or not isinstance(inner, nn.Module):
            return model
        model = inner


def save_checkpoint(path, state: TrainState, cfg, extra=None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "epoch": state.epoch,
        "history": state.history,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "config": cfg.as_dict(),
        **(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint


def load_checkpoint(path, state: TrainState) -> None:
    blob = torch.load(path, map_location=state.device, weights_only=False)
    unwrap(state.model).load_state_dict(blob["model"])
    state.optimizer.load_state_dict(blob["optimizer"])
    state.scaler.load_state_dict(blob["scaler"])
    if state.ema is not None and blob.get("ema") is not None:
        state.ema.load_state_dict(blob["ema"])
    state.epoch = blob["epoch"]
    state.history = blob.get("history", [])
    torch.set_rng_state(blob["rng"]["torch"])
    np.random.set_state(blob["rng"]["numpy"])
    random.setstate(blob["rng"]["python"])


def init_from(model: nn.Module, path, log=print) -> str | None:
    """Transfer learning: load every weight whose name and shape match; the classifier of
    another class count is left freshly initialised. Returns the head's name."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    src = blob.get("model", blob)
    dst = unwrap(model).state_dict()
    keep = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    skipped = sorted(set(dst) - set(keep))
    unwrap(model).load_state_dict(keep, strict=False)
    head = head_name(unwrap(model))
    if skipped:
        log(f"init: loaded {len(keep)} tensors from {path}; re-initialised {len(skipped)} ({', '.join(skipped[:4])}{' ...' if len(skipped) > 4 else ''})")
    return head


def head_name(model: nn.Module) -> str:
    """The name of the final classifier module (the last Linear)."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    return last.split(".")[0] if last and "." in last and last.split(".")[0] in ("classifier", "heads") else last


def freeze_backbone(model: nn.Module, head: str) -> None:
    for name, p in unwrap(model).named_parameters():
        p.requires_grad = name.startswith(head + ".")


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
