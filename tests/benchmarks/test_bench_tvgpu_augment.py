"""torchvision-gpu's augment stage alone, batched vs per image: the cost of turning one batch of
decoded images into the res x res float batch (train: RandomResizedCrop + flip + resize; val:
resize + center crop), on this machine's CPU (the dry-run device), decode excluded.

    .venv/bin/python -m pytest tests/benchmarks/test_bench_tvgpu_augment.py --benchmark-only -s

augment=batched (loaders/batched_resize.py): per size group one padded tensor, one float
conversion, the weights in a few broadcast ops, two batched matmuls; what stays per image is
the crop parameters (Python RNG), the padded copy and, before it, the decode list.
augment=per-image: per image a float conversion, one antialiased interpolate, a copy into the
batch (the loop torchvision-gpu ran until 2026-12). On a GPU the per-image loop is bound by
kernel launches (~4 per image), the batched path by arithmetic; on the CPU both are arithmetic,
so these numbers show the CPU cost per batch, not the GPU's launch saving.
"""
from __future__ import annotations

import statistics

import pytest
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from loaders.batched_resize import resize_batch
from loaders.torchvision_gpu import plan_for, resize_per_image
from tests.benchmarks.conftest import SPEC, interleave, torch_threads

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
AUGMENTS = {"batched": resize_batch, "per-image": resize_per_image}


def _decoded(dataset, split: str, n: int) -> list[torch.Tensor]:
    out = []
    for path, _ in dataset.samples(split)[:n]:
        with open(path, "rb") as f:
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
        out.append(decode_jpeg(data, mode=ImageReadMode.RGB))
    return out


@pytest.mark.parametrize("split", ["train", "val"])
def test_bench_tvgpu_augment_batched_vs_per_image(benchmark, embedded, split):
    """One batch of 64 decoded embedded JPEGs (200-500 px) -> 64 x 3 x 224 x 224, per round."""
    res = SPEC.resolution(split)
    images = _decoded(embedded, split, SPEC.batch_size)
    plans = [plan_for(split, SPEC, img.shape[-2], img.shape[-1], res, 0, i) for i, img in enumerate(images)]
    out = torch.empty((len(images), 3, res, res), memory_format=torch.channels_last)

    def loop(fn):
        def run() -> int:
            fn(images, plans, res, out)
            return len(images)
        return run

    with torch_threads(1):  # one core, as one producer thread has
        rates = interleave(benchmark, {k: loop(f) for k, f in AUGMENTS.items()}, rounds=5)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ms = {k: round(1000 * len(images) / v, 2) for k, v in med.items()}
    benchmark.extra_info.update({f"{k}_ms_per_batch": v for k, v in ms.items()},
                                batched_over_per_image=round(med["batched"] / med["per-image"], 3),
                                batch_size=len(images), res=res, split=split)
    print(f"\n{split}: " + ", ".join(f"{k} {v} ms/batch" for k, v in ms.items())
          + f"; batched / per-image speed {med['batched'] / med['per-image']:.2f}")
