"""What training carries from step to step: model, optimiser, scaler, EMA, position; and the
schedules (learning rate, resolution) as functions of the epoch and the `schedule` section."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn


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
    history: list = field(default_factory=list)  # one metrics dict per completed epoch
    # Where a stopped run stands inside epoch `epoch`: batches done, and what the epoch's
    # metrics need from them (per-step losses, samples, seconds), so that a run resumed
    # mid-epoch ends with the uninterrupted run's train loss and sample count.
    batch: int = 0
    partial: dict = field(default_factory=lambda: {"losses": [], "seen": 0, "wall_s": 0.0})

    def end_epoch(self) -> None:
        self.epoch, self.batch = self.epoch + 1, 0
        self.partial = {"losses": [], "seen": 0, "wall_s": 0.0}


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


def make_state(model, optim, device, amp, images_per_step: int, head: str | None = None) -> TrainState:
    """SGD on the `optim` section; the LR is per 256 images, scaled to the global batch."""
    base_lr = optim.lr * images_per_step / 256
    groups = param_groups(model, optim.weight_decay, optim.backbone_lr, head)
    opt = torch.optim.SGD(groups, lr=base_lr, momentum=optim.momentum, nesterov=optim.nesterov)
    # fp16 needs loss scaling (its range underflows small gradients); bf16 has fp32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == torch.float16))
    ema = None
    if optim.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(optim.ema), use_buffers=True)
    crit = nn.CrossEntropyLoss(label_smoothing=optim.label_smoothing)
    return TrainState(model, opt, scaler, device, amp, base_lr, crit, ema)


def lr_factor(epoch: float, schedule) -> float:
    """Learning-rate multiplier at a (fractional) epoch."""
    E = schedule.epochs
    if schedule.lr_schedule == "triangular":  # FFCV: linear up to the peak, linear down to 0
        peak = min(schedule.lr_peak_epoch, E)
        return float(np.interp(epoch, [0, peak, E], [1e-4, 1.0, 0.0]))
    warm = schedule.warmup_epochs
    if warm > 0 and epoch < warm:
        return epoch / warm
    if schedule.lr_schedule == "step":
        return schedule.step_ratio ** int(epoch // schedule.step_length)
    if schedule.lr_schedule == "cosine":
        t = (epoch - warm) / max(E - warm, 1e-9)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def res_at(epoch: int, schedule, res: int) -> int:
    """FFCV's progressive resizing: min_res until start_ramp, then linear to max_res at
    end_ramp, rounded to multiples of 32; `res` when the schedule has no ramp."""
    if schedule.min_res is None or schedule.max_res is None:
        return res
    start, end = schedule.start_ramp or 0, schedule.end_ramp or schedule.epochs
    if epoch <= start:
        return schedule.min_res
    if epoch >= end:
        return schedule.max_res
    r = np.interp(epoch, [start, end], [schedule.min_res, schedule.max_res])
    return int(round(r / 32)) * 32
