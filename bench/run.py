"""`python -m bench.run`: measure loaders, training, evaluation and accuracy.

    python -m bench.run --mode loader --loader all --steps 50
    python -m bench.run --mode train --loader torchvision,synthetic --arch resnet18 --res 64
    python -m bench.run --mode accuracy --recipe cpu-demo

Each measurement appends one JSON record (config, hardware fingerprint, metrics, status) to
--out (default results/<machine>.jsonl); a configuration that fails becomes a record with
status error, and the run goes on.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch

import loaders
import models
from loaders.data import DataError
from loaders.spec import cpu_cores

from . import modes
from . import train as T
from .config import resolve
from .results import append, default_path
from .schedule_rule import describe, stretched


def plan_cores(cfg, device) -> tuple[int, int]:
    """(loader workers, compute threads). On a CPU-only machine the loader and the model share
    the cores: measured on 2 cores, a resnet18 step fell from 522 to ~14 img/s when another
    process held a core (OpenMP threads waiting on each other), so never oversubscribe."""
    # Under torchrun the ranks on one machine split its cores.
    cores = max(1, cpu_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if device.type == "cuda" or cfg.mode in ("loader", "tune", "ceiling"):
        workers = cfg.workers if cfg.workers is not None else cores
        threads = cfg.threads or (max(1, cores // 4) if device.type == "cuda" else 1)
    else:
        # One core: load in the main process between steps (a worker would only contend).
        workers = cfg.workers if cfg.workers is not None else (cores // 2 if cores >= 2 else 0)
        threads = cfg.threads or max(1, cores - workers)
    return workers, threads


def unknown_options(cfg) -> str | None:
    """One line if a --loader-options key is read by none of the selected loaders (a typo)."""
    selected = [loaders.REGISTRY[n] for n in expand(cfg.loader, list(loaders.REGISTRY)) if n in loaders.REGISTRY]
    unknown = sorted(k for k in cfg.options() if not any(k in b.options for b in selected))
    if not unknown:
        return None
    takes = "; ".join(f"{b.name}: {', '.join(b.options)}" for b in selected if b.options) or "none of them takes options"
    return f"--loader-options {', '.join(unknown)}: no selected loader reads it ({takes})"


def expand(value: str, universe: list[str]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    return list(universe) if items == ["all"] else items


def run_one(ctx, mode: str, name: str, arch: str, ceiling_cache: dict) -> list[dict]:
    if mode == "loader":
        return modes.loader_mode(ctx, name)
    if mode == "train":
        return modes.train_mode(ctx, name, arch, ceiling_cache)
    if mode == "eval":
        return modes.eval_mode(ctx, name, arch)
    if mode == "accuracy":
        return modes.accuracy_mode(ctx, name, arch)
    if mode == "tune":
        from .tune import tune_mode

        return tune_mode(ctx, name)
    if mode == "ceiling":
        from .ceiling import ceiling_mode

        return ceiling_mode(ctx)
    raise ValueError(mode)


def fmt_table(records: list[dict]) -> str:
    rows = [r for r in records if r["kind"] in ("loader", "train", "eval", "accuracy", "ceiling", "tune")]
    if not rows:
        return ""
    best = {}
    for r in rows:
        ips = r["metrics"].get("images_per_sec") or 0
        if r.get("loader") != "synthetic":  # the synthetic loader is a ceiling, not a contender
            best[r["kind"]] = max(best.get(r["kind"], 0), ips)
    head = f"{'mode':<9}{'loader':<17}{'split/arch':<12}{'images/s':>12}{'p10-p90':>22}{'vs best':>9}{'/ceiling':>9}{'top1':>8}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        m = r["metrics"]
        ips = m.get("images_per_sec") or 0
        spread = f"{m['p10']:.0f}-{m['p90']:.0f}" if "p10" in m else ""
        ratio = f"{ips / best[r['kind']]:.2f}" if best.get(r["kind"]) and ips and r.get("loader") != "synthetic" else ""
        top1 = f"{m['top1']:.3f}" if m.get("top1") is not None else ""
        ceil = f"{m['ceiling_ratio']:.2f}" if m.get("ceiling_ratio") else ""
        what = r.get("arch") or r.get("variant") or ""
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {(r.get('error') or '')[:60]}"
        lines.append(f"{r['kind']:<9}{(r.get('loader') or '-'):<17}{what:<12}{ips:>12.1f}{spread:>22}{ratio:>9}{ceil:>9}{top1:>8}  {status}")
    return "\n".join(lines)


def main(argv=None) -> int:
    cfg, args = resolve(argv)
    if args.print_config:
        print(json.dumps(cfg.as_dict(), indent=2))
        return 0
    from .distributed import setup as dist_setup

    loaders.base.keep_host_memory()

    dist = dist_setup(cfg)
    device = dist.device or T.resolve_device(cfg.device)
    amp = T.resolve_amp(cfg.amp, device)
    workers, threads = plan_cores(cfg, device)
    torch.set_num_threads(threads)
    say = T.log_stderr
    bad = unknown_options(cfg)
    if bad:
        say(f"error: {bad}")
        return 2

    try:
        # Rank 0 generates/validates (and caches) the data; the other ranks then read the cache.
        with dist.rank_zero_first():
            dataset = loaders.resolve(cfg.data, skip_bad=cfg.skip_bad, progress=cfg.progress and dist.rank == 0)
    except DataError as e:
        say(f"error: {e}")
        return 2
    if dataset.quarantined:
        say(f"note: {len(dataset.quarantined)} bad files left out (--skip-bad); the records count them")

    if cfg.mode == "accuracy":  # a small data set still gets the recipe's optimiser steps (bench/schedule_rule.py)
        n_train = len(dataset.samples("train"))
        asked, cfg = cfg, stretched(cfg, n_train, dist.world)
        note = describe(asked, cfg, n_train, dist.world)
        if note and dist.rank == 0:
            say(note)
    ctx = dist.context(cfg, dataset, device, amp, workers, threads)
    names = expand(cfg.loader, loaders.names(runnable_here=True))
    if cfg.mode in ("loader", "tune") and cfg.loader.strip() == "all":
        # synthetic hands out one tensor made once: a compute ceiling for train mode, not a
        # loader to time (its "images/sec" would only measure the loop).
        names = [n for n in names if n != "synthetic"]
    arch_names = models.names()
    archs = expand(cfg.arch, arch_names)
    if cfg.mode in ("loader", "tune", "ceiling"):
        archs = [None]
    if cfg.mode == "ceiling":
        names = [None]
    unknown = [n for n in names if n is not None and n not in loaders.REGISTRY]
    if unknown:
        say(f"error: unknown loader {unknown[0]!r}; choose from {', '.join(loaders.names())} or all")
        return 2

    records, ceiling_cache = [], {}
    for name in names:
        reason = loaders.why_unavailable(name) if name else None
        for arch in archs:
            bad_arch = arch is not None and arch not in arch_names
            if reason or bad_arch:
                why = reason or f"unknown architecture {arch!r}; choose from {', '.join(arch_names)}"
                rec = [ctx.record(_kind(cfg.mode), loader=name, arch=arch, status="unavailable" if reason else "error", error=why)]
                say(f"skipped {name} {arch or ''}: {why}")
            else:
                try:
                    rec = run_one(ctx, cfg.mode, name, arch, ceiling_cache)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # noqa: BLE001 - a failing configuration is a record, the sweep goes on
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    say(f"error: {cfg.mode} {name} {arch or ''}: {type(e).__name__}: {first}")
                    if not isinstance(e, (DataError, loaders.BackendUnavailable)):
                        traceback.print_exc(limit=3, file=sys.stderr)
                    rec = [ctx.record(_kind(cfg.mode), loader=name, arch=arch, status="error", error=f"{type(e).__name__}: {first}")]
            for r in rec:
                if dist.rank == 0:
                    append(r, cfg.out)
                    if cfg.json:
                        print(json.dumps(r, default=str), flush=True)
            records += rec
    dist.close()
    if dist.rank == 0:
        table = fmt_table(records)
        stream = sys.stderr if cfg.json else sys.stdout
        if table:
            print(table, file=stream)
        print(f"records appended to {cfg.out or default_path()}", file=stream)
    failed = [r for r in records if r["status"] != "ok"]  # nothing measured at all: a failing exit
    return 1 if failed and len(failed) == len(records) else 0


def _kind(mode: str) -> str:
    return {"loader": "loader", "train": "train", "eval": "eval", "accuracy": "accuracy", "tune": "tune", "ceiling": "ceiling"}[mode]


if __name__ == "__main__":
    sys.exit(main())
