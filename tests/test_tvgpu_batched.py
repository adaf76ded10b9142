"""torchvision-gpu's batched augmentation, next-pass prefetch and decoder option, on the CPU
dry-run path (spec.device="cpu": the same code, torchvision's or nvImageCodec's CPU decoder):
pixels against the `torchvision` backend on odd sizes, grayscale and upscaling crops; order
and crops unchanged by prefetch, set_resolution at an epoch boundary; decoder=nvimgcodec."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from loaders import BackendUnavailable, LoaderSpec, build
from loaders.datasets import Dataset
from loaders.torchvision_gpu import TorchvisionGpuLoader
from loaders.tvgpu_decoders import nvimgcodec_reason
from tests.helpers import collect, to_levels

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")]

# (h, w, mode): odd sizes, thin strips, grayscale, and images smaller than res (upscaling crops)
SIZES = [(37, 53, "RGB"), (300, 211, "RGB"), (23, 41, "L"), (121, 7, "RGB"), (500, 120, "L"), (16, 16, "RGB"),
         (64, 64, "RGB"), (99, 255, "RGB"), (48, 31, "L")]
SPEC = LoaderSpec(batch_size=4, res=64, val_res=64, workers=2, seed=11, device="cpu")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]  # cuda: bench/gpu_check.sh's `pytest -m gpu`


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> Dataset:
    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(1)
    samples = []
    for k, (h, w, mode) in enumerate(SIZES):
        # smooth content (a JPEG of noise is all ringing): a few random gradients
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.stack([(np.sin(xx / rng.uniform(3, 20) + yy / rng.uniform(3, 20) + c) + 1) * 127 for c in range(3)], -1)
        img = Image.fromarray(a.astype(np.uint8)).convert(mode)
        path = root / f"img_{k}.jpg"
        img.save(path, "JPEG", quality=92)
        samples.append((str(path), k % 2))
    return Dataset("odd", root, ["a", "b"], {"train": samples, "val": samples}, "odd-v1")


def _levels_diff(a, b):
    return (to_levels(a, SPEC) - to_levels(b, SPEC)).abs()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", ["val", "train"])
@pytest.mark.parametrize("augment", ["batched", "per-image"])
def test_pixels_match_the_torchvision_backend(odd, split, augment, device):
    with TorchvisionGpuLoader(split, odd, SPEC.with_(device=device, options={"augment": augment})) as L:
        a, ya = collect(L)
    with build("torchvision", split, odd, SPEC.with_(workers=1)) as L:
        b, yb = collect(L)
    assert ya.tolist() == yb.tolist()
    d = _levels_diff(a, b)
    print(f"{augment} {split}: mean {d.mean():.3f} levels, worst image {d.mean((1, 2, 3)).max():.3f}")
    # The torchvision backend decodes large crops at a reduced DCT scale (PIL draft / region
    # decode), which moves single images by a few levels (train); the mean stays within 1.
    assert d.mean() <= 1.0 and d.mean((1, 2, 3)).max() <= (2.0 if split == "val" else 4.0)


def _epochs(loader, epochs, res_at=None):
    """Batches of consecutive epochs (set_epoch before each, as training does); set_resolution
    at the boundaries named in res_at {epoch: res}."""
    out = []
    for e in epochs:
        loader.set_epoch(e)
        if res_at and e in res_at:
            loader.set_resolution(res_at[e])
        out.append(collect(loader))
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", ["train", "val"])
def test_prefetch_keeps_order_and_crops(odd, split, device):
    cold = TorchvisionGpuLoader(split, odd, SPEC.with_(device=device, options={"ahead": False}))
    warm = TorchvisionGpuLoader(split, odd, SPEC.with_(device=device, prefetch=2))
    with cold, warm:
        a, b = _epochs(cold, range(3)), _epochs(warm, range(3))
        facts = warm.facts()
    for (xa, ya), (xb, yb) in zip(a, b):
        assert ya.tolist() == yb.tolist() and torch.equal(xa, xb)
    assert facts["ahead_used"] == 2 and facts["ahead_discarded"] == 0, facts  # epochs 1 and 2 were in flight
    if split == "train":
        assert a[0][1].tolist() != a[1][1].tolist(), "epochs differ in order"


def test_set_resolution_at_the_boundary_still_applies(odd):
    cold = TorchvisionGpuLoader("train", odd, SPEC.with_(options={"ahead": False}))
    warm = TorchvisionGpuLoader("train", odd, SPEC)
    with cold, warm:
        a = _epochs(cold, range(3), res_at={1: 48})
        b = _epochs(warm, range(3), res_at={1: 48})
        facts = warm.facts()
    assert [x.shape[-1] for x, _ in b] == [64, 48, 48]
    for (xa, ya), (xb, yb) in zip(a, b):
        assert ya.tolist() == yb.tolist() and torch.equal(xa, xb)
    assert facts["ahead_discarded"] == 1 and facts["ahead_used"] == 1, facts


def test_another_epoch_or_a_resumed_pass_is_not_taken_from_the_prefetch(odd):
    with TorchvisionGpuLoader("train", odd, SPEC) as L, TorchvisionGpuLoader("train", odd, SPEC.with_(options={"ahead": False})) as C:
        collect(L)  # epoch 0; epoch 1 in flight
        L.set_epoch(5)
        C.set_epoch(5)
        assert torch.equal(collect(L)[0], collect(C)[0])
        L.set_epoch(6, start_batch=1)
        C.set_epoch(6, start_batch=1)
        assert torch.equal(collect(L)[0], collect(C)[0])
        assert L.facts()["ahead_used"] == 0


# -- decoder=nvimgcodec ----------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_nvimgcodec_decoder_matches_the_default(odd, device):
    spec = SPEC.with_(device=device)
    if nvimgcodec_reason():
        with pytest.raises(BackendUnavailable, match="decoder=nvimgcodec: nvImageCodec cannot be imported"):
            TorchvisionGpuLoader("val", odd, spec.with_(options={"decoder": "nvimgcodec"}))
        return
    for split in ("val", "train"):
        with TorchvisionGpuLoader(split, odd, spec.with_(options={"decoder": "nvimgcodec", "ahead": False})) as L:
            a, ya = collect(L)
            assert L.describe()["decoder"] == "nvimgcodec" and L.facts()["device_decoded"] == len(SIZES)
        with TorchvisionGpuLoader(split, odd, spec) as L:
            b, yb = collect(L)
        assert ya.tolist() == yb.tolist() and _levels_diff(a, b).mean() <= 0.5
    # two producers and the next pass started ahead share the one decoder: nothing lost
    with TorchvisionGpuLoader("train", odd, spec.with_(options={"decoder": "nvimgcodec", "producers": 2})) as L:
        for _ in _epochs(L, range(3)):
            pass
        assert L.facts()["device_decode_errors"] == 0, L.facts()


def test_nvimgcodec_that_cannot_import_is_one_line(odd, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_nvimgcodec(name, *args, **kw):
        if name == "nvidia" and args and args[2] and "nvimgcodec" in args[2]:
            raise ImportError("No module named 'nvidia.nvimgcodec'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_nvimgcodec)
    with pytest.raises(BackendUnavailable) as e:
        TorchvisionGpuLoader("val", odd, SPEC.with_(options={"decoder": "nvimgcodec"}))
    assert len(str(e.value).splitlines()) == 1 and "pip install nvidia-nvimgcodec-cu13" in str(e.value)


def test_grayscale_comes_out_rgb_from_each_decoder(odd):
    gray = [s for s, (_, _, m) in zip(odd.samples("val"), SIZES) if m == "L"]
    ds = Dataset("gray", odd.root, odd.classes, {"train": gray, "val": gray}, "gray-v1")
    decoders = ["torchvision"] + ([] if nvimgcodec_reason() else ["nvimgcodec"])
    for name in decoders:
        with TorchvisionGpuLoader("val", ds, SPEC.with_(options={"decoder": name})) as L:
            x, _ = collect(L)
        lv = to_levels(x, SPEC)
        assert x.shape[1] == 3 and (lv[:, 0] - lv[:, 1]).abs().max() < 1.0, name
