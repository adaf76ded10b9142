"""The communicator: what a run does differently on one process and under torchrun.

`Single` is one process; `Distributed` is a torch.distributed process group made from
torchrun's environment (nccl on CUDA, gloo on CPU). Both are passed to whoever needs them
(the training loop, the harness); nothing is patched on.

    comm = communicator(compute_device="auto")
    model = comm.wrap(model)            # DistributedDataParallel under torchrun
    total = comm.sum(local_count)       # a number or a float64 tensor, summed over ranks
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import torch


class Single:
    """One process: every reduction is the identity."""

    rank, world, local_rank = 0, 1, 0
    device: torch.device | None = None  # None: the caller resolves the device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        return model

    def sum(self, x):
        return x

    def gather(self, x: float) -> list[float]:
        return [x]

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any (all ranks take the same branch)."""
        return bool(flag)

    def barrier(self) -> None:
        pass

    @contextmanager
    def main_first(self):
        """The block runs on rank 0 first (e.g. writing a cache), then on the others."""
        yield

    def close(self) -> None:
        pass


class Distributed(Single):
    """A torch.distributed process group; one GPU per rank on CUDA."""

    def __init__(self, rank: int, world: int, local_rank: int, device: torch.device | None):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    def wrap(self, model):
        dev = self.device
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev is not None and dev.type == "cuda" else None)

    def _where(self) -> torch.device:
        return self.device or torch.device("cpu")

    def sum(self, x):
        import torch.distributed as dist

        t = x.clone() if torch.is_tensor(x) else torch.tensor([float(x)], dtype=torch.float64)
        t = t.to(self._where())
        dist.all_reduce(t)
        return t.cpu() if torch.is_tensor(x) else t.item()

    def gather(self, x: float) -> list[float]:
        import torch.distributed as dist

        t = torch.tensor([float(x)], dtype=torch.float64, device=self._where())
        out = [torch.zeros_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [o.item() for o in out]

    def any(self, flag: bool) -> bool:
        return self.sum(1.0 if flag else 0.0) > 0

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    @contextmanager
    def main_first(self):
        if self.rank != 0:
            self.barrier()
        try:
            yield
        finally:
            if self.rank == 0:
                self.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def communicator(device: str = "auto") -> Single:
    """Single unless torchrun's environment says WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Single()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    dev = None
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    # A finite timeout: a rank stuck on a dead peer errors out instead of hanging forever
    # (torchrun also tears the group down when any rank exits with an error).
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=10))
    return Distributed(rank, world, local, dev)
