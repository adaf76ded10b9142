"""What every measurement of one `bench.run` invocation shares, resolved once: the config, the
dataset, the device and AMP dtype, the core split, the communicator; and how a measurement
becomes a loader spec and a result record."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm import tqdm

import loaders
from loaders import LoaderSpec

from ..results import committed_path, fingerprint, make_record, out_path
from ..training.compute import dtype_name


def log_stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


@dataclass
class Context:
    cfg: object  # bench.cli.config.RunConfig
    dataset: object  # loaders.Dataset
    device: torch.device
    amp: torch.dtype | None
    workers: int
    threads: int
    comm: object  # bench.training.comm.Single or Distributed
    log: Callable[[str], None] = log_stderr
    memo: dict = field(default_factory=dict)  # what one measurement leaves for the next (the compute ceiling per arch)

    def spec(self, loader_name: str, res: int | None = None) -> LoaderSpec:
        d, c = self.cfg.data, self.cfg.compute
        return LoaderSpec(
            batch_size=d.batch_size, res=res or d.res, val_res=d.val_res or d.res, crop_ratio=d.crop_ratio, scale=(d.scale_min, 1.0),
            workers=self.workers, prefetch=d.prefetch, device=str(self.device), dtype=dtype_name(self.amp),
            channels_last=c.channels_last, seed=c.seed, rank=self.comm.rank, world=self.comm.world,
            options=loaders.options_for(loader_name, d.loader_options),
        )

    def resolved(self, loader: str | None = None, arch: str | None = None, **extra) -> dict:
        """The configuration of one measurement: every setting as resolved, with the loader and
        architecture of THIS record (not the sweep's list)."""
        out = {**self.cfg.flat(), "device": str(self.device), "amp": str(self.amp).replace("torch.", "") if self.amp else "off",
               "workers": self.workers, "threads": self.threads, "world_size": self.comm.world}
        if arch:  # which network models.create built at this resolution: below 96 px most are the small-input variant
            import models

            out["model_variant"] = models.variant(arch, self.cfg.data.res)
        out.update(extra)
        out.update(loader=loader, arch=arch)
        return out

    def record(self, kind, loader=None, arch=None, variant=None, metrics=None, config=None, **kw) -> dict:
        return make_record(kind, loader=loader, arch=arch, variant=variant, dataset=self.dataset.describe(),
                           config=config or self.resolved(loader, arch), metrics=metrics, **kw)

    def decode_ceiling(self) -> float | None:
        """This machine's latest decode ceiling at the train resolution (see ceiling_mode), from
        this run's records file or the machine's committed one."""
        from .ceiling_mode import latest_ceiling

        paths = dict.fromkeys([out_path(self.cfg.output.out), committed_path()])
        return latest_ceiling(list(paths), fingerprint()["id"], self.cfg.data.res)

    def bar(self, **kw):
        return tqdm(disable=not self.cfg.output.progress or not self.comm.is_main, leave=False, **kw)


def passes(loader):
    """iter(loader) for its current epoch, then for each next epoch (set_epoch before each):
    what a measurement that outlasts one epoch iterates."""
    first = loader.epoch
    for k in itertools.count():
        if k:
            loader.set_epoch(first + k)
        yield iter(loader)
