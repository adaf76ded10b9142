"""torch.distributed set-up: a process group from the torchrun environment, or a single
process. The Context it makes knows how to wrap the model and sum counts over ranks."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
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
            ctx.gather = lambda x: all_gather(x, self.world, device)
            ctx.barrier = dist.barrier
        return ctx

    @contextmanager
    def rank_zero_first(self):
        """Rank 0 runs the block first (e.g. writes a cache), then the others run it."""
        if self.world > 1 and self.rank != 0:
            dist.barrier()
        try:
            yield
        finally:
            if self.world > 1 and self.rank == 0:
                dist.barrier()

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
    # A finite timeout: a rank stuck on a dead peer errors out instead of hanging forever
    # (torchrun also tears the group down when any rank exits with an error).
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=10))
    return Dist(rank, world, local, device)


def all_sum(x, device):
    """Sum a number or a float64 tensor over ranks (returns the same kind)."""
    t = x.clone() if torch.is_tensor(x) else torch.tensor([float(x)], dtype=torch.float64)
    t = t.to(device)
    dist.all_reduce(t)
    return t.cpu() if torch.is_tensor(x) else t.item()


def all_gather(x: float, world: int, device) -> list[float]:
    t = torch.tensor([float(x)], dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(world)]
    dist.all_gather(out, t)
    return [o.item() for o in out]
