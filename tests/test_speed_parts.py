"""Correctness of the speed levers (not timed): the fast decode/resize paths keep the crop
geometry and the pixels, val stays exactly torchvision's, and the thread pool keeps exact
epochs, order and per-(seed, epoch, index) crops."""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
import torch
from PIL import Image

from loaders import LoaderSpec, build
from loaders.geometry import rrc_params, sample_rng
from loaders.reference import train_crop, val_crop
from loaders.torchvision_decode import decode_rgb, train_into, val_into
from loaders.datasets.generated import render
from tests.helpers import collect, jpeg_bytes

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


@lru_cache(maxsize=1)
def _blobs():
    out = [render("train", k % 10, k) for k in range(16)]
    out += [jpeg_bytes(1, 7, "L"), jpeg_bytes(2, 8, "CMYK"), jpeg_bytes(3, 9, progressive=True), jpeg_bytes(4, 10, fmt="PNG")]
    return tuple(out)


def _big_jpeg() -> bytes:
    """A 1400 x 1000 photo-like JPEG: crops >= 2 x 224 take the DCT-scaled decode path."""
    img = Image.open(io.BytesIO(render("train", 3, 5))).convert("RGB").resize((1400, 1000), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_train_fast_path_matches_reference_crop():
    """Same RNG draws in the same order -> same box and flip; pixels within rounding of PIL."""
    diffs = []
    for i, data in enumerate(_blobs()):
        with Image.open(io.BytesIO(data)) as img:
            ref = train_crop(img, 224, sample_rng(0, 1, i), SCALE, RATIO, True).astype(np.int16)
        out = torch.empty(224, 224, 3, dtype=torch.uint8)
        train_into(out, data, 224, sample_rng(0, 1, i), SCALE, RATIO, True)
        d = np.abs(out.numpy().astype(np.int16) - ref)
        diffs.append(d.mean())
        assert d.mean() < 0.5, f"image {i}: mean |diff| {d.mean():.3f}"
    assert np.mean(diffs) < 0.1


def test_dct_scaled_decode_keeps_geometry():
    """A crop >= 2x the output side is decoded at reduced DCT scale: same box, near-identical pixels."""
    data = _big_jpeg()
    seen = 0
    for i in range(40):
        top, left, h, w = rrc_params(sample_rng(0, 0, i), 1400, 1000, SCALE, RATIO)
        if min(h, w) < 2 * 224:
            continue
        seen += 1
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: the exact reference
            ref = np.asarray(img.resize((224, 224), Image.BILINEAR, box=(left, top, left + w, top + h))).astype(np.int16)
        rng = sample_rng(0, 0, i)
        out = torch.empty(224, 224, 3, dtype=torch.uint8)
        train_into(out, data, 224, rng, SCALE, RATIO, False)
        d = np.abs(out.numpy().astype(np.int16) - ref)
        assert d.mean() < 2.0, f"crop {i} ({w}x{h}): mean |diff| {d.mean():.2f}"
    assert seen >= 3


@pytest.mark.parametrize("res,side", [(224, 256), (32, 37), (160, 183)])
def test_val_fast_path_is_torchvision_to_the_pixel(res, side):
    for i, data in enumerate(_blobs()):
        with Image.open(io.BytesIO(data)) as img:
            ref = val_crop(img, res, side)
        out = torch.empty(res, res, 3, dtype=torch.uint8)
        val_into(out, data, res, side)
        assert np.array_equal(out.numpy(), ref), f"image {i}"


def test_val_matches_stock_torchvision_transforms(tiny_root, tiny):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    spec = LoaderSpec(batch_size=5, res=32, val_res=32, workers=2)
    stock = ImageFolder(str(tiny_root / "val"), transform=T.Compose([T.Resize(spec.resize_side("val")), T.CenterCrop(32), T.PILToTensor()]))
    want = torch.stack([stock[i][0] for i in range(len(stock))]).permute(0, 2, 3, 1)
    from loaders.torchvision import _batch

    samples = tiny.samples("val")
    images, labels = _batch(samples, "val", spec, 32, 0, list(range(len(samples))), False)
    assert torch.equal(images, want)
    assert labels.tolist() == [lab for _, lab in samples]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores, on purpose
@pytest.mark.parametrize("pool,workers,chunk", [("threads", 2, None), ("threads", 0, None), ("processes", 2, None),
                                               ("processes", 3, 1), ("processes", 2, 3)])
def test_pools_give_the_same_batches(tiny, pool, workers, chunk):
    """Threads, the calling thread and worker processes (batches cut into chunks that need
    not divide them): same order, same crops, exact epochs."""
    spec = LoaderSpec(batch_size=4, res=32, val_res=32, workers=1, seed=5)
    with build("torchvision", "train", tiny, spec) as ref_loader:
        ref_loader.set_epoch(2)
        ref = collect(ref_loader)
    options = {"pool": pool, **({"chunk": chunk} if chunk else {})}
    with build("torchvision", "train", tiny, spec.with_(workers=workers, prefetch=3, options=options)) as loader:
        loader.set_epoch(2)
        sizes = [x.shape[0] for x, _ in loader]
        assert sizes == [4] * (len(sizes) - 1) + [sizes[-1]] and len(sizes) == len(loader)
        got = collect(loader)
        assert got[0].shape[0] == len(tiny.samples("train")) == loader.num_samples
        loader.set_epoch(3)
        other = collect(loader)
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    assert not torch.equal(other[0], got[0])


def test_thread_pool_survives_an_abandoned_pass(tiny):
    spec = LoaderSpec(batch_size=2, res=32, workers=2, prefetch=4, seed=1)
    with build("torchvision", "train", tiny, spec) as loader:
        it = iter(loader)
        next(it)
        del it  # abandoned mid-epoch: queued batches are cancelled
        x, y = collect(loader)
        assert x.shape[0] == loader.num_samples


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_drop_last_in_either_pool(tiny, pool):
    spec = LoaderSpec(batch_size=4, res=32, workers=2, drop_last=True, options={"pool": pool, "chunk": 3})
    with build("torchvision", "train", tiny, spec) as loader:
        sizes = [x.shape[0] for x, _ in loader]
    assert sizes and all(s == 4 for s in sizes) and len(sizes) == len(loader)


def test_simplejpeg_decodes_like_pil():
    for data in _blobs():
        with Image.open(io.BytesIO(data)) as img:
            ref = np.asarray(img.convert("RGB"))
        assert np.array_equal(decode_rgb(data), ref)


# -- tune mode and the pytest-benchmark JSON converter ---------------------------------------
def test_tune_mode_writes_a_record_and_prints_flags(tiny_root, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "t.jsonl"
    p = subprocess.run([sys.executable, "-m", "bench.run", "--no-progress", "--mode", "tune", "--loader", "torchvision",
                        "--data", str(tiny_root), "--seconds", "6", "--batch-size", "4", "--res", "32", "--out", str(out)],
                       cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "use: python -m bench.run --loader torchvision --workers" in p.stdout
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    m = rec["metrics"]
    assert rec["kind"] == "tune" and rec["status"] == "ok" and m["images_per_sec"] > 0
    assert m["points"] and set(m["best"]) == {"workers", "prefetch", "batch_size"}
    assert m["flags"].startswith("--workers ")


def test_benchjson_turns_cases_into_records(tmp_path):
    import json

    from bench.results.benchjson import main

    doc = {"version": "5.3.1", "datetime": "2026-11-26T00:00:00", "commit_info": {"id": "abc", "dirty": True}, "benchmarks": [
        {"name": "test_bench_loader[torchvision-train]", "fullname": "tests/benchmarks/x.py::test_bench_loader[torchvision-train]",
         "group": None, "params": {"name": "torchvision", "split": "train"},
         "extra_info": {"images_per_sec": 812.5, "loader": "torchvision", "variant": "train", "hardware": {"id": "h1", "cores": 2}},
         "stats": {"min": 0.9, "max": 1.1, "mean": 1.0, "median": 1.0, "stddev": 0.1, "iqr": 0.1, "rounds": 3, "iterations": 1, "ops": 1.0}}]}
    src, out = tmp_path / "b.json", tmp_path / "r.jsonl"
    src.write_text(json.dumps(doc))
    assert main([str(src), "--out", str(out)]) == 0
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["kind"] == "benchmark" and rec["loader"] == "torchvision" and rec["variant"] == "train"
    assert rec["metrics"]["images_per_sec"] == 812.5 and rec["metrics"]["rounds"] == 3
    assert rec["hardware"] == {"id": "h1", "cores": 2}


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # built, never iterated: no process starts
@pytest.mark.parametrize("workers,pool,chunk", [(2, "threads", None), (4, "threads", None), (5, "processes", 64), (16, "processes", 64)])
def test_default_pool_follows_the_worker_count(tiny, workers, pool, chunk):
    """Threads up to 4 workers; above, processes, each worker building whole batches."""
    with build("torchvision", "train", tiny, LoaderSpec(batch_size=64, res=32, workers=workers)) as loader:
        assert loader.describe()["pool"] == pool
        assert loader.describe().get("chunk") == chunk


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_file_that_passes_the_scan_but_not_the_decoder_is_named(tmp_path, tiny, pool):
    """Corrupt entropy data keeps the magic bytes and the end marker, so the scan lets it in;
    the decode must then fail with one line naming the file, from either pool."""
    import random

    from loaders.datasets import DataError, Dataset

    data = bytearray(jpeg_bytes(0, 3))
    mid = len(data) // 2
    data[mid:mid + 800] = bytes(random.Random(0).randrange(256) for _ in range(800))
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(bytes(data))
    s = tiny.samples("val")
    ds = Dataset("corrupt", tmp_path, tiny.classes, {"train": s, "val": s + [(str(bad), 0)]}, "corrupt")
    spec = LoaderSpec(batch_size=4, res=32, val_res=32, workers=2, options={"pool": pool})
    with build("torchvision", "val", ds, spec) as loader:
        with pytest.raises(DataError, match=r"^\S*corrupt\.jpg: cannot decode this image \(.+\); replace or delete it$"):
            collect(loader)
