"""DALI backend: same pixels as torchvision on val, same crop statistics on train, exact epochs
and shards, every input format to RGB, and a clean failure for a GPU request without CUDA."""
from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import loaders
from loaders import BackendUnavailable, LoaderSpec, build
from loaders.datasets import Dataset, scan
from loaders.datasets.generated import render
from tests.helpers import collect, jpeg_bytes, ks_critical, ks_statistic, to_levels

from loaders.dali import DaliLoader, unavailable_reason  # noqa: E402  (make installs DALI: no skip)

SPEC = LoaderSpec(batch_size=16, res=32, val_res=32, workers=2, seed=5)


def fake_dataset(root: Path, train: list[tuple[str, int]], val: list[tuple[str, int]], classes: int) -> Dataset:
    return Dataset(name="t", root=root, classes=[f"c{i}" for i in range(classes)],
                   splits={"train": train, "val": val}, fingerprint="t")


# -- availability ----------------------------------------------------------------------------
def test_registered_variants_are_available():
    assert loaders.why_unavailable("dali") is None and loaders.why_unavailable("dali-cpu") is None


def test_forced_gpu_fails_cleanly_without_cuda(tiny):
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the GPU pipeline is allowed")
    reason = unavailable_reason(device="gpu")
    assert reason and "CUDA" in reason and "dali-cpu" in reason and "\n" not in reason
    with pytest.raises(BackendUnavailable, match="CUDA") as e:
        DaliLoader("val", tiny, SPEC, device="gpu")
    assert "\n" not in str(e.value)
    # `dali` (auto) on this machine quietly takes the CPU pipeline.
    with build("dali", "val", tiny, SPEC) as loader:
        assert loader.describe()["pipeline"] == "cpu"


def test_missing_dali_gives_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # `import nvidia.dali` now raises ImportError
    reason = unavailable_reason()
    assert "pip install nvidia-dali-cuda120" in reason and "make venv" in reason and "\n" not in reason


# -- val: the torchvision backend's pixels ----------------------------------------------------
@pytest.fixture(scope="module")
def varied_root(tmp_path_factory) -> Path:
    """300 real-looking JPEGs: 60 embedded renders, each also stretched to 4 other sizes
    (60-650 px, both orientations, so both crop axes and odd resize remainders occur)."""
    root = tmp_path_factory.mktemp("varied")
    rng = np.random.default_rng(0)
    for label in range(3):
        (root / "train" / f"c{label}").mkdir(parents=True)
        (root / "train" / f"c{label}" / "a.jpg").write_bytes(render("train", label, 0))
        d = root / "val" / f"c{label}"
        d.mkdir(parents=True)
        for i in range(20):
            img = Image.open(io.BytesIO(render("val", label, i)))
            for k in range(5):
                im = img
                if k:
                    w, h = img.size
                    im = img.resize((max(60, int(w * rng.uniform(0.4, 1.3))), max(60, int(h * rng.uniform(0.4, 1.3)))), Image.BILINEAR)
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=90)
                (d / f"{i:03d}_{k}.jpg").write_bytes(buf.getvalue())
    return root


def test_val_matches_torchvision(varied_root):
    ds = scan(varied_root, progress=False)
    spec = LoaderSpec(batch_size=50, workers=0)  # 224 from 256, the real setting
    with build("torchvision", "val", ds, spec) as loader:
        ref, yref = collect(loader)
    with build("dali", "val", ds, spec.with_(workers=2)) as loader:
        out, y = collect(loader)
    assert torch.equal(y, yref) and out.shape == ref.shape == (300, 3, 224, 224)
    diff = (to_levels(out, spec).round() - to_levels(ref, spec).round()).abs()
    per_image = diff.mean(dim=(1, 2, 3))
    print(f"val parity on {len(per_image)} JPEGs: mean |diff| {diff.mean():.3f} levels, worst image {per_image.max():.3f}")
    assert diff.mean() <= 2.0
    assert per_image.max() <= 2.0, "no image may be shifted or scaled differently"


def test_odd_formats_decode_to_the_same_rgb(tmp_path):
    """Grayscale, CMYK, progressive JPEG, PNG (RGB, RGBA, L, P) -> 3-channel RGB, same colours
    as PIL's convert('RGB') in the torchvision backend (val path: deterministic)."""
    kinds = {"gray.jpg": jpeg_bytes(0, 1, "L"), "cmyk.jpg": jpeg_bytes(0, 2, "CMYK"),
             "prog.jpg": jpeg_bytes(0, 3, progressive=True), "rgb.png": jpeg_bytes(0, 4, fmt="PNG"),
             "rgba.png": jpeg_bytes(0, 5, "RGBA", fmt="PNG"), "l.png": jpeg_bytes(0, 6, "L", fmt="PNG"),
             "p.png": jpeg_bytes(0, 7, "P", fmt="PNG")}
    for split in ("train", "val"):
        d = tmp_path / split / "a"
        d.mkdir(parents=True)
        for name, data in kinds.items():
            (d / name).write_bytes(data)
    ds = scan(tmp_path, progress=False)
    spec = SPEC.with_(val_res=64, workers=0)
    with build("torchvision", "val", ds, spec) as loader:
        ref = to_levels(collect(loader)[0], spec).round()
    with build("dali", "val", ds, spec.with_(workers=2)) as loader:
        out = to_levels(collect(loader)[0], spec).round()
    assert out.shape == (len(kinds), 3, 64, 64)
    per_image = (out - ref).abs().mean(dim=(1, 2, 3))
    names = [Path(p).name for p, _ in ds.samples("val")]
    print("odd formats, mean |diff| vs torchvision:", {k: round(v, 3) for k, v in zip(names, per_image.tolist())})
    assert per_image.max() <= 2.0, dict(zip(names, per_image.tolist()))
    for name, img in zip(names, out):
        if name in ("gray.jpg", "l.png"):
            assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    with build("dali", "train", ds, spec) as loader:  # the fused decode+crop path too
        x, _ = collect(loader)
    assert x.shape == (len(kinds), 3, 32, 32)


# -- train: RandomResizedCrop's statistics ------------------------------------------------------
def test_train_crops_match_torchvision_random_resized_crop(tmp_path):
    """A marker image (R = x, G = y, lossless PNG) through the train pipeline: each output's
    gradients give back its crop window. Compare the crop areas and aspect ratios with
    torchvision's RandomResizedCrop.get_params on the same image size (two-sample KS), and the
    flip rate with 1/2."""
    import torchvision.transforms as T

    W, H, res, n = 256, 192, 48, 512
    xs, ys = np.meshgrid(np.arange(W), np.arange(H))
    marker = np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8)
    path = tmp_path / "marker.png"
    Image.fromarray(marker).save(path)
    ds = fake_dataset(tmp_path, [(str(path), 0)] * n, [(str(path), 0)], 1)
    spec = SPEC.with_(batch_size=64, res=res)
    with build("dali", "train", ds, spec) as loader:
        out = to_levels(collect(loader)[0], spec).round().numpy()  # N,3,res,res
    inner = np.arange(3, res - 3)
    sx = np.polyfit(inner + 0.5, out[:, 0][:, :, inner].mean(axis=1).T, 1)[0]  # d(source x)/d(output col)
    sy = np.polyfit(inner + 0.5, out[:, 1][:, inner, :].mean(axis=2).T, 1)[0]
    w, h = np.abs(sx) * res, sy * res
    got_area, got_logratio = w * h / (W * H), np.log(w / h)

    torch.manual_seed(0)
    img = torch.zeros(3, H, W)
    ref = np.array([T.RandomResizedCrop.get_params(img, list(spec.scale), list(spec.ratio)) for _ in range(4000)], float)
    ref_area, ref_logratio = ref[:, 2] * ref[:, 3] / (W * H), np.log(ref[:, 3] / ref[:, 2])

    crit = ks_critical(n, len(ref))
    d_area, d_ratio = ks_statistic(got_area, ref_area), ks_statistic(got_logratio, ref_logratio)
    print(f"KS area D={d_area:.3f}, log-aspect D={d_ratio:.3f} (critical {crit:.3f}); flipped {np.mean(sx < 0):.3f}")
    assert d_area < crit and d_ratio < crit
    assert abs(np.mean(sx < 0) - 0.5) < 3 * 0.5 / math.sqrt(n), "horizontal flip with p = 1/2"
    assert got_area.min() > spec.scale[0] * 0.8 and got_area.max() <= 1.02


# -- exact epochs, order, shards ---------------------------------------------------------------
def test_train_is_deterministic_per_seed_and_epoch(tiny):
    def run(epoch, workers=2):
        with build("dali", "train", tiny, SPEC.with_(workers=workers)) as loader:
            loader.set_epoch(epoch)
            x, y = collect(loader)
            assert y.tolist() == [tiny.samples("train")[i][1] for i in loader.order()]
            return x, y

    (a, ya), (b, yb), (c, _) = run(1), run(1), run(2)
    assert torch.equal(a, b) and torch.equal(ya, yb), "same seed + epoch -> same order and crops"
    assert not torch.equal(a, c)
    assert torch.equal(run(1, workers=1)[0], a), "crops do not depend on the thread count"


def test_second_pass_same_epoch_repeats_and_val_reuses_pipeline(tiny):
    with build("dali", "train", tiny, SPEC) as loader:
        x1, _ = collect(loader)
        x2, _ = collect(loader)
        assert torch.equal(x1, x2)
    with build("dali", "val", tiny, SPEC) as loader:
        x1, _ = collect(loader)
        pipe = loader._pipe
        x2, _ = collect(loader)
        assert loader._pipe is pipe and torch.equal(x1, x2)
        next(iter(loader))  # abandon a pass half-way: the next one rebuilds and is whole
        x3, _ = collect(loader)
        assert torch.equal(x1, x3)


@pytest.mark.parametrize("split", ["train", "val"])
def test_three_shards_partition_every_epoch(tiny, split):
    n, world = len(tiny.samples(split)), 3
    labels = [label for _, label in tiny.samples(split)]
    for epoch in (0, 1):
        seen, sizes = [], []
        for rank in range(world):
            with build("dali", split, tiny, SPEC.with_(rank=rank, world=world, batch_size=2)) as loader:
                loader.set_epoch(epoch)
                _, y = collect(loader)
                order = loader.order()
                assert y.tolist() == [labels[i] for i in order]
                assert len(y) == loader.num_samples == len(order) and len(loader) == math.ceil(len(y) / 2)
                seen += order
                sizes.append(len(order))
        assert sorted(seen) == list(range(n)), "each sample exactly once over the ranks"
        assert max(sizes) - min(sizes) <= 1


def test_drop_last_drops_only_the_partial_batch(tiny):
    spec = SPEC.with_(batch_size=4, drop_last=True)
    with build("dali", "train", tiny, spec) as loader:
        _, y = collect(loader)
        n = len(tiny.samples("train"))
        assert len(y) == loader.num_samples == n - n % 4 and len(loader) == n // 4


@pytest.mark.gpu
def test_gpu_pipeline_matches_cpu_pipeline(varied_root):
    if unavailable_reason():  # the lent GPU machines have no DALI (its wheel is too big to carry)
        pytest.skip(unavailable_reason())
    ds = scan(varied_root, progress=False)
    spec = LoaderSpec(batch_size=50, workers=4, device="cuda")
    with build("dali", "val", ds, spec) as loader:
        assert loader.describe()["pipeline"].startswith("gpu")
        gpu, _ = collect(loader)
    with build("dali-cpu", "val", ds, spec) as loader:
        cpu, _ = collect(loader)
    assert (to_levels(gpu, spec).round() - to_levels(cpu, spec).round()).abs().mean() <= 2.0


def test_train_crops_are_the_torchvision_backends_sample_for_sample(tiny):
    """The crop window and flip of every train sample come from the same per-sample RNG as in
    the torchvision backend (loaders/dali_source.py), so the pixels agree with its reference
    path (PIL decode + resize) within decoder rounding, epoch after epoch, on one pipeline."""
    spec = SPEC.with_(batch_size=8, res=48)
    ref = {}
    with build("torchvision", "train", tiny, spec.with_(options={"decoder": "pil"})) as loader:
        for epoch in (0, 3):
            loader.set_epoch(epoch)
            ref[epoch] = collect(loader)
    with build("dali-cpu", "train", tiny, spec) as loader:
        for epoch in (0, 3):
            loader.set_epoch(epoch)
            x, y = collect(loader)
            assert torch.equal(y, ref[epoch][1])
            per_image = (to_levels(x, spec).round() - to_levels(ref[epoch][0], spec).round()).abs().mean(dim=(1, 2, 3))
            print(f"epoch {epoch}: train |diff| vs the PIL reference {per_image.mean():.3f} levels mean, worst image {per_image.max():.3f}")
            assert per_image.mean() <= 1.5 and per_image.max() <= 3.0
        assert loader.facts()["passes_prefetched"] == 0, "epoch 3 was not the guess (epoch 1)"
        pipe = loader._pipe
        loader.set_epoch(4)
        collect(loader)
        assert loader._pipe is pipe and loader.facts()["passes_prefetched"] == 1, "epoch 4 followed 3: already in flight"
