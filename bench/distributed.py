"""torch.distributed set-up: a process group from the torchrun environment, or a single
process. The Context it makes knows how to wrap the model and sum counts over ranks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .modes import Context


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device | None = None

    def context(self, cfg, dataset, device, amp, workers, threads) -> Context:
        ctx = Context(cfg, dataset, device, amp, workers, threads, rank=self.rank, world=self.world)
        if self.world > 1:
            ctx.wrap = lambda m: torch.nn.parallel.DistributedDataParallel(m, device_ids=[device.index] if device.type == "cuda" else None)
            ctx.sum = lambda x: all_sum(x, device)
            ctx.reduce_eval = lambda ev: reduce_eval(ev, device)
        return ctx

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def setup(cfg) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and cfg.device in ("auto", "cuda")
    device = None
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local, device)


def all_sum(x, device):
    t = torch.tensor([float(x)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item()


def reduce_eval(ev: dict, device) -> dict:
    """Top-1/5 over exactly the val split: sum correct counts and sample counts over ranks."""
    n = ev["val_samples"]
    keys = [k for k in ("top1", "top5", "top1_ema", "top5_ema", "loss") if k in ev]
    t = torch.tensor([ev[k] * n for k in keys] + [n], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    total = t[-1].item()
    out = dict(ev)
    for i, k in enumerate(keys):
        out[k] = round(t[i].item() / max(total, 1), 4)
    out["val_samples"] = int(total)
    out["eval_images_per_sec"] = all_sum(ev.get("eval_images_per_sec", 0), device)
    return out
