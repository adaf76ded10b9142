"""The registry of `bench.run --mode`s. Importing it imports nothing heavy (the CLI lists the
modes without torch); each mode's function is imported when it runs."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    target: str  # "module:function" under bench.harness, called as function(ctx, loader, arch)
    summary: str
    per_loader: bool = True  # sweeps --loader (the decode ceiling reads files itself)
    per_arch: bool = False  # sweeps --arch
    # Whether `--loader all` includes the compute-ceiling backend: only where it is the
    # reference every loader is divided by (train mode), never as a contender.
    all_includes_ceiling: bool = False

    def function(self):
        module, name = self.target.split(":")
        return getattr(importlib.import_module(f"bench.harness.{module}"), name)


MODES: dict[str, Mode] = {}


def register(mode: Mode) -> None:
    MODES[mode.name] = mode


register(Mode("loader", "loader_mode:run", "loader-only images/sec (and the ratio to the decode ceiling)"))
register(Mode("train", "train_mode:run", "training images/sec, its ratio to the compute ceiling, data-wait share",
              per_arch=True, all_includes_ceiling=True))
register(Mode("eval", "eval_mode:run", "validation images/sec and top-1/5", per_arch=True))
register(Mode("accuracy", "accuracy_mode:run", "train E epochs, evaluate each, checkpoints and resume", per_arch=True))
register(Mode("tune", "tune_mode:run", "search workers, prefetch and batch size for loader-only images/sec"))
register(Mode("scaling", "scaling_mode:run", "loader-only images/sec at 1, 2, 4, ... workers up to the cores (the planning curves)"))
register(Mode("ceiling", "ceiling_mode:run", "decode + RandomResizedCrop + flip from memory, one process per core", per_loader=False))

MODE_NAMES = tuple(MODES)
