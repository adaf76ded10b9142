"""FFCV backend: conversion cache, val parity, crop statistics, sharding, the hang guard.

Each FFCV Loader costs ~1-8 s of numba compilation on its first batch: tests share loaders
where they can and use small resolutions.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loaders import LoaderSpec, build
from loaders.datasets import Dataset, scan
from tests.helpers import collect, ks_statistic, make_imagefolder, to_levels

from loaders import ffcv as ffcv_mod  # make installs FFCV here: no skip
from loaders import ffcv_convert as fc
from loaders import ffcv_writer as fw

pytestmark = [
    pytest.mark.timeout(120),
    # numba's dispatcher finalizer raises a harmless KeyError when a compiled FFCV pipeline is
    # garbage-collected (numba 0.68); it is not ours to fix.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

QUIET = {"progress": False}


def solid_dataset(root: Path, n: int, size=(40, 30)) -> Dataset:
    """n solid-colour PNGs, each colour unique: identifies a sample after any crop or flip."""
    for i in range(n):
        d = root / "train" / f"c{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (10 * i + 5, 255 - 10 * i, 7 * i % 256)).save(d / f"s{i:03d}.png")
        v = root / "val" / f"c{i % 3}"
        v.mkdir(parents=True, exist_ok=True)
        if not any(v.iterdir()):
            shutil.copy(d / f"s{i:03d}.png", v / "v.png")
    return scan(root, progress=False)


def sample_ids(x: torch.Tensor, spec, ds: Dataset, split="train") -> list[int]:
    """Dataset indices of a batch of solid_dataset crops, from their red level."""
    index = {int(Path(p).stem[1:]): k for k, (p, _) in enumerate(ds.samples(split))}
    red = to_levels(x, spec)[:, 0].mean(dim=(1, 2))
    return [index[int(round((float(r) - 5) / 10))] for r in red]


# -- conversion and cache ------------------------------------------------------------------
def test_cache_hit_miss_and_invalidation(tmp_path):
    root = make_imagefolder(tmp_path / "data", train=(3, 2), val=(1, 1), odd_formats=True)
    ds = scan(root, progress=False)
    params = fc.write_params({})
    p1, meta1, built1 = fc.ensure_beton(ds, "train", params, progress=False)
    assert built1 and p1.exists() and meta1["bytes"] == p1.stat().st_size and meta1["convert_s"] > 0
    mtime = p1.stat().st_mtime_ns
    p2, meta2, built2 = fc.ensure_beton(scan(root, progress=False), "train", params, progress=False)
    assert (p2, built2) == (p1, False) and p1.stat().st_mtime_ns == mtime, "unchanged -> never rebuilt"
    assert meta2["convert_s"] == meta1["convert_s"], "a hit still reports the original cost"

    # another write parameter -> another file; the first one stays usable
    p3, _, built3 = fc.ensure_beton(ds, "train", fc.write_params({"jpeg_quality": 80}), progress=False)
    assert built3 and p3 != p1 and p1.exists()

    # changed data -> rebuilt; files of the old data are dropped
    time.sleep(0.01)
    extra = root / "train" / "apple" / "img_new.jpg"
    shutil.copy(root / "train" / "apple" / "img_000.jpg", extra)
    ds2 = scan(root, progress=False)
    assert ds2.fingerprint != ds.fingerprint
    p4, meta4, built4 = fc.ensure_beton(ds2, "train", params, progress=False)
    assert built4 and p4 != p1 and meta4["samples"] == len(ds2.samples("train"))
    assert not p1.exists() and not p3.exists()


def test_large_raw_image_converts_and_loads(tmp_path):
    """2000x2000 raw is 12 MB: more than FFCV's 8 MiB default page."""
    root = tmp_path / "big"
    for split in ("train", "val"):
        (root / split / "a").mkdir(parents=True)
    yy, xx = np.mgrid[0:2000, 0:2000]
    arr = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(arr).save(root / "train" / "a" / "big.jpg", quality=95)
    Image.fromarray(arr[:300, :200]).save(root / "train" / "a" / "small.jpg")
    shutil.copy(root / "train" / "a" / "small.jpg", root / "val" / "a" / "small.jpg")
    ds = scan(root, progress=False)
    params = fc.write_params({"write_mode": "raw", "max_resolution": None})
    assert fw.page_size_for(ds.samples("train"), params) >= 2000 * 2000 * 3
    spec = LoaderSpec(batch_size=2, res=32, workers=1, options={**params, **QUIET})
    with build("ffcv", "train", ds, spec) as loader:
        assert loader.stats["beton_bytes"] > 12_000_000
        x, y = collect(loader)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [0, 0]


@pytest.mark.timeout(60)
def test_writer_failure_is_a_clear_error_not_a_hang(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\0" * 100 + b"\xff\xd9")  # passes the header check only
    params = fc.write_params({})
    out = tmp_path / "x.beton"
    with pytest.raises(fw.ConversionError, match="bad.jpg"):
        fw.convert([(str(good), 0)] * 5 + [(str(bad), 1)] + [(str(good), 0)] * 5, out, params, workers=2, progress=False)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.timeout(60)
def test_writer_process_death_is_a_clear_error_not_a_hang(tmp_path, monkeypatch):
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(good)
    real = fw._Images.__getitem__

    def dies(self, i):
        if i == 3:
            os._exit(3)  # as a segfault or the OOM killer would: no exception, no cleanup
        return real(self, i)

    monkeypatch.setattr(fw._Images, "__getitem__", dies)
    with pytest.raises(fw.ConversionError, match="writer process (exited with code 3|died)"):
        fw.convert([(str(good), 0)] * 8, tmp_path / "x.beton", fc.write_params({}), workers=2, progress=False)


# -- val parity ----------------------------------------------------------------------------
def test_val_pixel_parity_with_torchvision(tmp_path):
    """Default write policy (JPEG q90, max 512 px): FFCV center-crops then resizes (OpenCV),
    torchvision resizes (PIL, antialiased) then crops. Measured here: ~2.5 levels mean."""
    ds = scan(make_imagefolder(tmp_path / "d", train=(1, 1, 1), val=(6, 6, 6)), progress=False)
    spec = LoaderSpec(batch_size=6, workers=1, options=dict(QUIET))  # 224 from 256, the default
    with build("torchvision", "val", ds, spec) as loader:
        ref, yref = collect(loader)
    with build("ffcv", "val", ds, spec) as loader:
        got, y = collect(loader)
        policy = loader.describe()["write_policy"]
    assert policy == fc.write_params({})
    assert y.tolist() == yref.tolist()
    diff = (to_levels(got, spec) - to_levels(ref, spec)).abs()
    print(f"ffcv val vs torchvision: mean |diff| {diff.mean():.2f} levels (0-255), p99 {diff.flatten().quantile(0.99):.1f}")
    assert diff.mean() <= 4.0


# -- train crops ---------------------------------------------------------------------------
def test_train_crops_match_torchvision_random_resized_crop(tmp_path):
    """A marker image whose red = x and green = y: each output's ramps give the crop box."""
    W, H, res, n = 240, 160, 32, 1024
    yy, xx = np.mgrid[0:H, 0:W]
    marker = np.stack([xx, yy, np.full_like(xx, 128)], -1).astype(np.uint8)
    path = tmp_path / "marker.png"
    Image.fromarray(marker).save(path)
    cache = tmp_path / "cache"
    cache.mkdir()
    ds = Dataset("marker", tmp_path, ["m"], {"train": [(str(path), 0)] * n, "val": [(str(path), 0)]}, "marker-v1", cache_dir=cache)
    spec = LoaderSpec(batch_size=256, res=res, workers=2, options={"write_mode": "raw", **QUIET})
    with build("ffcv", "train", ds, spec) as loader:
        x, _ = collect(loader)
    lv = to_levels(x, spec)
    w = (lv[:, 0, :, -1] - lv[:, 0, :, 0]).mean(1).abs().numpy() * res / (res - 1)
    h = (lv[:, 1, -1, :] - lv[:, 1, 0, :]).mean(1).numpy() * res / (res - 1)
    assert (h > 0).all(), "vertical order preserved (flip is horizontal only)"
    flipped = (lv[:, 0, :, -1] < lv[:, 0, :, 0]).float().mean().item()

    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    img = torch.empty(3, H, W)
    boxes = np.array([RandomResizedCrop.get_params(img, list(spec.scale), list(spec.ratio)) for _ in range(n)], float)
    th, tw = boxes[:, 2], boxes[:, 3]
    area_ks = ks_statistic(w * h / (W * H), tw * th / (W * H))
    aspect_ks = ks_statistic(np.log(w / h), np.log(tw / th))
    print(f"KS area {area_ks:.3f}, KS log-aspect {aspect_ks:.3f}, flipped {flipped:.2f}")
    # critical value for n = m = 1024 at alpha = 0.001: 1.95 * sqrt(2 / 1024) = 0.086
    assert area_ks < 0.086 and aspect_ks < 0.086
    assert 0.4 < flipped < 0.6
    # the test has power: a different scale range is caught
    other = np.array([RandomResizedCrop.get_params(img, [0.3, 1.0], list(spec.ratio)) for _ in range(n)], float)
    assert ks_statistic(w * h / (W * H), other[:, 2] * other[:, 3] / (W * H)) > 0.2


# -- epochs, sharding, threads -------------------------------------------------------------
@pytest.fixture(scope="module")
def solid(tmp_path_factory):
    return solid_dataset(tmp_path_factory.mktemp("solid"), 13)


def test_exact_epochs_and_two_shards_cover_train_once(solid):
    n = len(solid.samples("train"))
    spec = LoaderSpec(batch_size=4, res=16, workers=1, seed=5, options={"write_mode": "raw", **QUIET})
    seen = []
    for rank in range(2):
        with build("ffcv", "train", solid, spec.with_(rank=rank, world=2)) as loader:
            assert len(loader) == -(-loader.num_samples // 4)
            for epoch in (2, 3):
                loader.set_epoch(epoch)
                x, y = collect(loader)
                assert x.shape[0] == loader.num_samples, "drop_last off: the partial batch too"
                ids = sample_ids(x, spec, solid)
                assert ids == loader.order(epoch), "FFCV follows our order"
                assert y.tolist() == [solid.samples("train")[i][1] for i in ids]
                seen.append((epoch, ids))
    for epoch in (2, 3):
        union = [i for e, ids in seen if e == epoch for i in ids]
        assert sorted(union) == list(range(n)), "ranks' union: every sample exactly once"
    assert seen[0][1] != seen[1][1], "set_epoch reshuffles"


def test_quasi_random_option_covers_the_rank_slice(solid):
    n = len(solid.samples("train"))
    spec = LoaderSpec(batch_size=4, res=16, workers=1, seed=1, rank=1, world=2,
                      options={"write_mode": "raw", "order": "quasi_random", "os_cache": False, **QUIET})
    with build("ffcv", "train", solid, spec) as loader:
        orders = []
        for epoch in (0, 0, 1):
            loader.set_epoch(epoch)
            orders.append(sample_ids(collect(loader)[0], spec, solid))
    assert sorted(orders[0]) == list(range(1, n, 2))
    assert orders[0] == orders[1], "same seed + epoch -> same order"
    assert sorted(orders[2]) == sorted(orders[0])
    assert orders[2] != orders[0], "another epoch -> another order"


def test_ffcv_distributed_mode_would_pad():
    """Why we shard ourselves: FFCV's distributed=True uses DistributedSampler(drop_last=False)."""
    from torch.utils.data import DistributedSampler

    parts = [list(DistributedSampler(range(13), num_replicas=2, rank=r, shuffle=False)) for r in range(2)]
    assert sum(map(len, parts)) == 14  # one sample twice


def test_torch_threads_untouched(solid):
    torch.set_num_threads(2)
    spec = LoaderSpec(batch_size=4, res=16, workers=1, options={"write_mode": "raw", **QUIET})
    with build("ffcv", "val", solid, spec) as loader:
        for _ in loader:
            assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


# -- the CPU hang --------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_the_hanging_pipeline_is_refused_and_ours_runs(solid):
    import ffcv.fields.basics as fb
    import ffcv.fields.rgb_image as fr
    import ffcv.transforms as ft

    path, _, _ = fc.ensure_beton(solid, "train", fc.write_params({"write_mode": "raw"}), progress=False)
    mean, std = np.array([124.0, 116, 104]), np.array([58.0, 57, 57])
    hanging = {
        "image": [fr.RandomResizedCropRGBImageDecoder((16, 16)), ft.RandomHorizontalFlip(), ft.ToTensor(), ft.ToTorchImage(),
                  ft.NormalizeImage(mean, std, np.float32), ft.ToDevice(torch.device("cpu"))],
        "label": [fb.IntDecoder(), ft.ToTensor()],
    }
    with pytest.raises(ffcv_mod.FfcvPipelineError, match=r"needs [3-9] stages"):  # at once: the timeout above catches a hang
        ffcv_mod.make_loader(path, 4, hanging, 1, order=lambda e: range(13), drop_last=False)

    # The backend's own pipeline: one jitted stage, the plan FFCV itself computes, a full epoch.
    spec = LoaderSpec(batch_size=4, res=16, workers=1, options={"write_mode": "raw", **QUIET})
    with build("ffcv", "train", solid, spec) as loader:
        graph = loader._loader.graph
        assert [sorted(s) for s in ffcv_mod.stage_plan(graph)] == [sorted(s) for s in graph.group_operations()]
        assert len(ffcv_mod.stage_plan(graph)) == 1
        assert sum(x.shape[0] for x, _ in loader) == 13


def test_unavailable_reason_names_the_install_command(monkeypatch):
    assert ffcv_mod.unavailable_reason() is None
    monkeypatch.setattr(ffcv_mod, "_FFCV", None)
    import builtins

    real_import = builtins.__import__

    def no_ffcv(name, *a, **kw):
        if name == "ffcv" or name.startswith("ffcv."):
            raise ImportError("No module named 'ffcv'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ffcv)
    why = ffcv_mod.unavailable_reason()
    assert "apt-get install -y pkg-config libturbojpeg0-dev libopencv-dev" in why and "pip install ffcv" in why
