"""torchvision-gpu (CUDA where there, else its CPU dry-run path) against the torchvision backend,
in 0-255 levels, val and train (same crops: the same per-sample RNG). bench/gpu_check.sh's step.

    python -m bench.gpu.parity embedded:1024 256 OUT/parity.json [--options decoder=nvimgcodec]
Exit 1 when val differs by more than 2 levels on average.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu.parity")
    ap.add_argument("data")
    ap.add_argument("n", type=int, help="images per split")
    ap.add_argument("out")
    ap.add_argument("--options", default="", help="torchvision-gpu loader options, k=v,k=v")
    a = ap.parse_args(argv)
    import torch

    from loaders import LoaderSpec, build
    from loaders.datasets import Dataset, resolve
    from loaders.torchvision_gpu import TorchvisionGpuLoader  # directly: its CPU path runs without CUDA too

    ds = resolve(a.data, progress=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    opts = {k: int(v) if v.isdigit() else v for k, v in (kv.split("=", 1) for kv in a.options.split(",") if kv)}
    spec = LoaderSpec(batch_size=32, res=224, val_res=224, seed=7)
    result = {"device": device, "options": opts, "decoder": {}}
    for split in ("val", "train"):
        every = ds.samples(split)
        samples = every[:: max(1, len(every) // a.n)][: a.n]
        sub = Dataset(ds.name + "-parity", ds.root, ds.classes, {"train": samples, "val": samples}, ds.fingerprint + "-p")
        t = time.perf_counter()
        with TorchvisionGpuLoader(split, sub, spec.with_(device=device, options=opts)) as L:
            x = torch.cat([b.float().cpu() for b, _ in L])
            result["decoder"][split] = L.describe()
        with build("torchvision", split, sub, spec.with_(device="cpu")) as L:
            ref = torch.cat([b.float().cpu() for b, _ in L])
        d = ((x - ref) * torch.tensor(spec.std).view(1, 3, 1, 1)).abs()
        r = {"mean_abs_levels": round(float(d.mean()), 4), "worst_image_levels": round(float(d.mean((1, 2, 3)).max()), 4),
             "p99_levels": round(float(d.flatten()[::97].quantile(0.99)), 2), "max_levels": round(float(d.max()), 2),
             "images": len(samples), "seconds": round(time.perf_counter() - t, 2)}
        result[split] = r
        print(f"parity {split:<5} {device}: mean |diff| {r['mean_abs_levels']:.3f} levels, worst image "
              f"{r['worst_image_levels']:.3f}, p99 {r['p99_levels']}, max {r['max_levels']} over {len(samples)} images")
    print("decoder stats:", json.dumps(result["decoder"]))
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0 if result["val"]["mean_abs_levels"] <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
