"""The decode ceiling: the best this machine can do at decode + RandomResizedCrop + flip with
the project's decoder stack (PIL on libjpeg-turbo), files already in memory, one process per
core, no batching, no transfer. Loaders are judged as a fraction of it."""
from __future__ import annotations

import io
import multiprocessing as mp
import time

from PIL import Image

from loaders.augment import sample_rng, train_crop
from loaders.spec import cpu_cores

from .results import load


def _loop(args) -> tuple[int, float]:
    blobs, res, scale, ratio, warmup_s, seconds, offset = args
    n, i, t_end_warm = 0, offset, time.perf_counter() + warmup_s
    while time.perf_counter() < t_end_warm:  # warm caches and the allocator
        with Image.open(io.BytesIO(blobs[i % len(blobs)])) as img:
            train_crop(img, res, sample_rng(0, 0, i), scale, ratio, True)
        i += 1
    t0 = time.perf_counter()
    while (t := time.perf_counter()) - t0 < seconds:
        with Image.open(io.BytesIO(blobs[i % len(blobs)])) as img:
            train_crop(img, res, sample_rng(0, 0, i), scale, ratio, True)
        i += 1
        n += 1
    return n, t - t0


def measure_ceiling(dataset, res=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seconds=5.0, processes=None, max_files=2000) -> dict:
    processes = processes or cpu_cores()
    blobs = []
    for path, _ in dataset.samples("train")[:max_files]:
        with open(path, "rb") as f:
            blobs.append(f.read())
    jobs = [(blobs, res, scale, ratio, 1.0, seconds, k * len(blobs) // processes) for k in range(processes)]
    with mp.get_context("fork").Pool(processes) as pool:
        results = pool.map(_loop, jobs)
    per = [n / t for n, t in results]
    return {"images_per_sec": round(sum(per), 1), "per_core": round(sum(per) / processes, 1), "processes": processes,
            "files": len(blobs), "res": res, "seconds": seconds}


def ceiling_mode(ctx) -> list[dict]:
    c = ctx.cfg
    m = measure_ceiling(ctx.dataset, c.res, seconds=c.seconds or 5.0, processes=c.workers)
    return [ctx.record("ceiling", metrics=m, config=ctx.resolved())]


def latest_ceiling(path, hardware_id: str, res: int) -> float | None:
    """The most recent ceiling measured on this machine at this resolution, from a results file."""
    try:
        recs = load([path])
    except OSError:
        return None
    best = [r for r in recs if r["kind"] == "ceiling" and r["status"] == "ok" and r["hardware"].get("id") == hardware_id
            and r["metrics"].get("res") == res]
    return best[-1]["metrics"]["images_per_sec"] if best else None
