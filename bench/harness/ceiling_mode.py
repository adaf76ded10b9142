"""The decode ceiling: the best this machine can do at FULL decode + RandomResizedCrop + flip
with the project's decoder stack, files already in memory, one process per core, no batching,
no transfer, no normalise. Loaders are judged as a fraction of it (`bench.run --mode loader`
reports `ceiling_ratio`).

Two loops are measured, one after the other, each on every core; the faster one is the ceiling:
  pil        PIL decode (libjpeg-turbo) + PIL resize(box=crop, bilinear, antialiased) + flip
  turbo      simplejpeg decode (libjpeg-turbo, no PIL object) + torch's uint8 antialiased
             bilinear resize of the crop (Pillow-SIMD's algorithm) + flip
Both decode every pixel of every image (no DCT scaling, no region decode): a loader that decodes
only what the crop needs may beat the ceiling, which is the point of measuring it this way.
"""
from __future__ import annotations

import io
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from PIL import Image

from loaders.geometry import rrc_params, sample_rng
from loaders.host import cpu_cores
from loaders.image_modes import to_rgb
from loaders.torchvision_decode import simplejpeg

from ..results import load

VARIANTS = ("pil", "turbo")


def _pil_one(data: bytes, res, scale, ratio, i) -> np.ndarray:
    rng = sample_rng(0, 0, i)
    with Image.open(io.BytesIO(data)) as img:
        top, left, h, w = rrc_params(rng, img.width, img.height, scale, ratio)
        img = to_rgb(img)
        arr = np.asarray(img.resize((res, res), Image.BILINEAR, box=(left, top, left + w, top + h)))
    return arr[:, ::-1] if rng.random() < 0.5 else arr


def _turbo_one(data: bytes, res, scale, ratio, i):
    import torch
    import torch.nn.functional as F

    rng = sample_rng(0, 0, i)
    arr = simplejpeg.decode_jpeg(data, "RGB")
    top, left, h, w = rrc_params(rng, arr.shape[1], arr.shape[0], scale, ratio)
    src = torch.from_numpy(arr[top:top + h, left:left + w]).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(src, size=(res, res), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0)
    return out.flip(1).contiguous() if rng.random() < 0.5 else out.contiguous()


def _loop(args) -> tuple[int, float]:
    variant, blobs, res, scale, ratio, warmup_s, seconds, offset = args
    import torch

    torch.set_num_threads(1)  # one process per core: no intra-op threads
    one = _pil_one if variant == "pil" else _turbo_one
    n, i, t_end_warm = 0, offset, time.perf_counter() + warmup_s
    while time.perf_counter() < t_end_warm:  # warm caches and the allocator
        one(blobs[i % len(blobs)], res, scale, ratio, i)
        i += 1
    t0 = time.perf_counter()
    while (t := time.perf_counter()) - t0 < seconds:
        one(blobs[i % len(blobs)], res, scale, ratio, i)
        i += 1
        n += 1
    return n, t - t0


def _jpeg_only(blobs: list[bytes]) -> bool:
    """simplejpeg can decode every file itself (the turbo loop has no PIL fallback)."""
    if simplejpeg is None:
        return False
    for b in blobs:
        try:
            if b[:3] != b"\xff\xd8\xff" or simplejpeg.decode_jpeg_header(b)[2] not in ("YCbCr", "Gray", "RGB"):
                return False
        except ValueError:
            return False
    return True


def run_loop(variant: str, blobs, res=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seconds=5.0, processes=None, warmup_s=1.0) -> dict:
    processes = processes or cpu_cores()
    jobs = [(variant, blobs, res, scale, ratio, warmup_s, seconds, k * len(blobs) // processes) for k in range(processes)]
    with mp.get_context("fork").Pool(processes) as pool:
        results = pool.map(_loop, jobs)
    per = [n / t for n, t in results]
    return {"images_per_sec": round(sum(per), 1), "per_core": round(sum(per) / processes, 1)}


def read_blobs(dataset, max_files=2000) -> list[bytes]:
    blobs = []
    for path, _ in dataset.samples("train")[:max_files]:
        with open(path, "rb") as f:
            blobs.append(f.read())
    return blobs


def measure_ceiling(dataset, res=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seconds=5.0, processes=None, max_files=2000,
                    variants=VARIANTS) -> dict:
    processes = processes or cpu_cores()
    blobs = read_blobs(dataset, max_files)
    variants = [v for v in variants if v != "turbo" or _jpeg_only(blobs)]
    loops = {v: run_loop(v, blobs, res, scale, ratio, seconds, processes) for v in variants}
    best = max(loops, key=lambda v: loops[v]["images_per_sec"])
    return {**loops[best], "variant": best, "variants": loops, "processes": processes, "files": len(blobs), "res": res,
            "seconds": seconds}


def run(ctx, name=None, arch=None) -> list[dict]:
    c = ctx.cfg
    m = measure_ceiling(ctx.dataset, c.data.res, seconds=c.measure.seconds or 5.0, processes=c.data.workers)
    ctx.log("ceiling: " + ", ".join(f"{v} {r['images_per_sec']:.0f} img/s" for v, r in m["variants"].items())
            + f" -> {m['images_per_sec']:.0f} img/s ({m['variant']}, {m['processes']} processes)")
    return [ctx.record("ceiling", variant=m["variant"], metrics=m)]


def latest_ceiling(paths, hardware_id: str, res: int) -> float | None:
    """The most recent ceiling measured on this machine at this resolution, from records files
    (a path or a list; missing ones are passed over)."""
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    recs = load([p for p in paths if Path(p).is_file()])
    recs = sorted(recs, key=lambda r: str(r.get("time") or ""))
    best = [r for r in recs if r["kind"] == "ceiling" and r["status"] == "ok" and r["hardware"].get("id") == hardware_id
            and r["metrics"].get("res") == res]
    return best[-1]["metrics"]["images_per_sec"] if best else None
