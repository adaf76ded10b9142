"""How a run splits the host's cores between the loader's workers and the compute threads."""
from __future__ import annotations

from loaders.host import cpu_cores

LOADER_ONLY = ("loader", "tune", "ceiling", "scaling")  # modes where the CPU does nothing but load


def plan_cores(mode: str, workers: int | None, threads: int | None, device_type: str, cores: int | None = None,
               local_world: int = 1) -> tuple[int, int]:
    """(loader workers, compute threads). On a CPU-only machine the loader and the model share
    the cores: measured on 2 cores, a resnet18 step fell from 522 to ~14 img/s when another
    process held a core (OpenMP threads waiting on each other), so never oversubscribe. Under
    torchrun the ranks on one machine split its cores."""
    cores = max(1, (cores or cpu_cores()) // max(1, local_world))
    if device_type == "cuda" or mode in LOADER_ONLY:
        w = workers if workers is not None else cores
        t = threads or (max(1, cores // 4) if device_type == "cuda" else 1)
    else:
        # One core: load in the main process between steps (a worker would only contend).
        w = workers if workers is not None else (cores // 2 if cores >= 2 else 0)
        t = threads or max(1, cores - w)
    return w, t
