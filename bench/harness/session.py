"""One `bench.run` invocation: resolve the machine (communicator, device, AMP, core split) and
the data once, then run the mode for each selected loader x architecture. A configuration that
fails becomes a record with status error (or unavailable, with the reason), and the sweep goes
on; rank 0 alone writes the records."""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch

import loaders
from loaders.faults import LoaderFailure, worker_died
from loaders.host import keep_host_memory

from ..results import append, committed_path, out_path
from ..training.comm import communicator
from ..training.compute import resolve_amp, resolve_device
from .context import Context, log_stderr
from .cores import plan_cores
from .honesty import checked
from .modes import MODES
from .preempt import Preempted
from .table import fmt_table


def expand(selected: tuple, universe: list[str]) -> list[str]:
    return list(universe) if list(selected) == ["all"] else list(selected)


def arch_names() -> list[str]:
    import models  # torchvision.models costs ~2 s to import: not for modes without a model

    return models.names()


def loader_names(cfg, mode) -> list:
    if not mode.per_loader:
        return [None]
    here = loaders.names(runnable_here=True)
    if not mode.all_includes_ceiling:
        here = [n for n in here if loaders.role(n) != "ceiling"]
    return expand(cfg.run.loader, here)


def measure_one(ctx, mode, name, arch) -> list[dict]:
    """The mode's records for one loader x arch, or one error/unavailable record."""
    reason = loaders.why_unavailable(name) if name else None
    bad_arch = arch is not None and arch not in arch_names()
    if reason or bad_arch:
        why = reason or f"unknown architecture {arch!r}; choose from {', '.join(arch_names())}"
        ctx.log(f"skipped {name} {arch or ''}: {why}")
        return [ctx.record(mode.name, loader=name, arch=arch, status="unavailable" if reason else "error", error=why)]
    try:
        return checked(ctx, mode.function()(ctx, name, arch), " ".join(x for x in (mode.name, name, arch) if x))
    except (KeyboardInterrupt, SystemExit, Preempted):
        raise
    except Exception as e:  # noqa: BLE001 - a failing configuration is a record, the sweep goes on
        e = worker_died(e)  # torch raises a dead worker's error wherever the main thread is
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        ctx.log(f"error: {mode.name} {name} {arch or ''}: {type(e).__name__}: {first}")
        if not isinstance(e, (loaders.DataError, loaders.BackendUnavailable, LoaderFailure)):
            traceback.print_exc(limit=3, file=sys.stderr)
        return [ctx.record(mode.name, loader=name, arch=arch, status="error", error=f"{type(e).__name__}: {first}")]


def _loader_problem(cfg, names) -> str | None:
    """What the CLI checks too, for callers that build a RunConfig themselves."""
    unknown = [n for n in names if n is not None and n not in loaders.REGISTRY]
    if unknown:
        return f"unknown loader {unknown[0]!r}; choose from {', '.join(loaders.names())} or all"
    bad = loaders.option_problems([n for n in names if n], cfg.data.loader_options)
    return bad[0] if bad else None


def _dataset(cfg, comm):
    with comm.main_first():  # rank 0 generates/validates (and caches) the data; the others read the cache
        dataset = loaders.resolve(cfg.data.data, skip_bad=cfg.data.skip_bad, progress=cfg.output.progress and comm.is_main,
                                  log=log_stderr if comm.is_main else None)
    if dataset.quarantined:
        log_stderr(f"note: {len(dataset.quarantined)} bad files left out (--skip-bad); the records count them")
    return dataset


def _stretched(cfg, mode, dataset, comm):
    """Accuracy mode: a small data set still gets the recipe's optimiser steps (schedule_rule)."""
    if mode.name != "accuracy":
        return cfg
    from ..training.schedule_rule import describe, stretched
    from .honesty import schedule_warnings

    n = len(dataset.samples("train"))
    asked, cfg = cfg, stretched(cfg, n, comm.world)
    note = describe(asked, cfg, n, comm.world)
    if note and comm.is_main:
        log_stderr(note)
    for w in schedule_warnings(cfg.schedule) if comm.is_main else ():
        log_stderr(f"warning: {w}")  # now, not after the run (the final record says it again)
    return cfg


def _summary(cfg, records) -> None:
    """This run's table, then where its records went."""
    stream = sys.stderr if cfg.output.json else sys.stdout
    table = fmt_table(records)
    if table:
        print(table, file=stream)
    where = out_path(cfg.output.out)
    note = "" if where.resolve() == committed_path().resolve() else (  # --out results is relative
        f" (not tracked by git; `make bench` or --out results writes the committed {committed_path().relative_to(committed_path().parents[1])}; "
        f"see these with: python -m bench.report {where})")
    print(f"records appended to {where}{note}", file=stream)


def main(cfg) -> int:
    mode = MODES[cfg.run.mode]
    names = loader_names(cfg, mode)
    why = _loader_problem(cfg, names)
    if why:
        log_stderr(f"error: {why}")
        return 2
    keep_host_memory()
    comm = communicator(cfg.compute.device)
    device = comm.device or resolve_device(cfg.compute.device)
    amp = resolve_amp(cfg.compute.amp, device)
    workers, threads = plan_cores(mode.name, cfg.data.workers, cfg.compute.threads, device.type,
                                  local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    try:
        dataset = _dataset(cfg, comm)
    except loaders.DataError as e:
        log_stderr(f"error: {e}")
        return 2
    cfg = _stretched(cfg, mode, dataset, comm)
    ctx = Context(cfg, dataset, device, amp, workers, threads, comm)
    archs = expand(cfg.model.arch, arch_names()) if mode.per_arch else [None]
    records = []

    def keep(rs):
        for r in rs:
            if comm.is_main:
                append(r, out_path(cfg.output.out))
                if cfg.output.json:
                    print(json.dumps(r, default=str), flush=True)
            records.append(r)

    try:
        for name in names:
            for arch in archs:
                keep(measure_one(ctx, mode, name, arch))
    except Preempted as e:  # the checkpoint is written; the finished epochs are records too
        keep(getattr(e, "records", []))
        if comm.is_main:
            log_stderr(str(e))
        comm.close()
        return e.exit_code
    comm.close()
    if comm.is_main:
        _summary(cfg, records)
    failed = [r for r in records if r["status"] != "ok"]  # nothing measured at all: a failing exit
    return 1 if failed and len(failed) == len(records) else 0
