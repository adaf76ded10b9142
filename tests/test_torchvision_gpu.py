"""torchvision-gpu backend: what is its own (producers, fallbacks, parity with `torchvision`).

The loader contract is tests/test_contract.py, which runs this backend on the CPU here and on
CUDA too where there is one. Here (no GPU) the class is built directly with spec.device="cpu":
the same code runs with torchvision's CPU JPEG decoder. The `gpu` tests run the same checks with
nvJPEG on CUDA (they skip automatically without it; bench/gpu_check.sh runs them on a lent GPU).
"""
from __future__ import annotations

import threading

import pytest
import torch
from PIL import Image

import loaders
from loaders import LoaderSpec, build
from loaders.datasets import DataError, Dataset
from loaders.torchvision_gpu import CPU_DRY_RUN, TorchvisionGpuLoader, jpeg_info, resized_size, unavailable_reason
from tests.helpers import collect, jpeg_bytes

pytestmark = [
    pytest.mark.timeout(180),
    # torchvision >= 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
    pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning"),
]

SPEC = LoaderSpec(batch_size=4, res=32, val_res=32, workers=2, seed=3)
PARITY = LoaderSpec(batch_size=8, res=224, val_res=224, workers=2, seed=5)  # 256 -> 224, the real sizes
MAX_MEAN_LEVELS = 2.0  # mean |diff| in 0-255 levels allowed vs the torchvision backend
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def levels(x: torch.Tensor, spec: LoaderSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return x.float().cpu() * std + mean


def every_format_as_val(tiny) -> Dataset:
    """tiny's train images (grayscale, CMYK, progressive, PNG among them) as the val split."""
    s = tiny.samples("train")
    return Dataset("tiny-odd-val", tiny.root, tiny.classes, {"train": s, "val": s}, tiny.fingerprint + "-odd")


def expected_fallbacks(samples) -> dict:
    """What must be decoded on the host: PNG (and other non-JPEG) and CMYK JPEGs."""
    out: dict = {}
    for path, _ in samples:
        with Image.open(path) as img:
            reason = "not-jpeg" if img.format != "JPEG" else ("cmyk" if img.mode == "CMYK" else None)
        if reason:
            out[reason] = out.get(reason, 0) + 1
    return out


def make(split, dataset, spec, device):
    return TorchvisionGpuLoader(split, dataset, spec.with_(device=device))


# -- pieces -------------------------------------------------------------------------------
def test_unavailable_reason_matches_cuda(monkeypatch):
    monkeypatch.delenv(CPU_DRY_RUN, raising=False)
    reason = unavailable_reason()
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert reason == "needs a CUDA GPU; use `torchvision` on this machine"
        monkeypatch.setenv(CPU_DRY_RUN, "1")
        assert unavailable_reason() is None


def test_registry_entry_if_registered():
    if "torchvision-gpu" not in loaders.REGISTRY:
        pytest.skip("torchvision-gpu not registered in loaders/__init__.py")
    assert loaders.available()["torchvision-gpu"] == unavailable_reason()


def test_jpeg_info_sniffs_components_and_progressive():
    assert jpeg_info(jpeg_bytes(0, 1)) == (3, False)
    assert jpeg_info(jpeg_bytes(0, 1, "L")) == (1, False)
    assert jpeg_info(jpeg_bytes(0, 1, "CMYK")) == (4, False)
    assert jpeg_info(jpeg_bytes(0, 1, progressive=True)) == (3, True)
    assert jpeg_info(jpeg_bytes(0, 1, fmt="PNG")) is None
    assert jpeg_info(b"\xff\xd8\xff") is None and jpeg_info(b"") is None


@pytest.mark.parametrize("h,w", [(300, 400), (400, 300), (256, 256), (333, 500), (257, 1000)])
def test_resized_size_is_torchvisions(h, w):
    import torchvision.transforms.functional as TF

    img = Image.new("RGB", (w, h))
    out = TF.resize(img, 256)
    assert resized_size(h, w, 256) == (out.height, out.width)


# -- the contract is tests/test_contract.py (on CUDA too); what is this backend's own ------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", ["train", "val"])
def test_more_producers_give_the_same_batches_in_order(split, device, tiny):
    """Producer p builds batches p, p+P, ...: the consumer must still see batch 0, 1, 2, ..."""
    out = {}
    for producers in (1, 3):
        with make(split, tiny, SPEC.with_(batch_size=2, options={"producers": producers}), device) as loader:
            assert loader.describe()["producers"] == producers
            out[producers] = [(x.clone(), y.clone()) for x, y in loader]
    assert len(out[1]) == len(out[3]) >= 3
    for (x1, y1), (x3, y3) in zip(out[1], out[3]):
        assert torch.equal(y1, y3) and torch.equal(x1, x3)


def test_drop_last_gives_full_batches(tiny):
    with make("train", tiny, SPEC.with_(drop_last=True), "cpu") as loader:
        sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [4] * (len(tiny.samples("train")) // 4) and len(sizes) == len(loader)


# -- fallbacks ----------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_cmyk_and_png_fall_back_to_host_and_are_counted(device, tiny):
    want = expected_fallbacks(tiny.samples("train"))
    assert want.get("cmyk") and want.get("not-jpeg"), "the fixture has CMYK and PNG files"
    # ahead=False: one epoch's counts (a next pass started ahead would decode its first batch too)
    with make("train", tiny, SPEC.with_(options={"ahead": False}), device) as loader:
        collect(loader)
        d = loader.facts()
    reasons = {k: v for k, v in d["fallback_reasons"].items() if k != "device-decode-error"}
    assert reasons == want
    assert d["cpu_fallbacks"] == sum(want.values()) + d["device_decode_errors"]
    assert d["device_decoded"] + d["cpu_fallbacks"] == len(tiny.samples("train"))
    if device == "cpu":  # libjpeg decodes grayscale (as RGB) and progressive JPEGs
        assert d["device_decode_errors"] == 0


@pytest.mark.timeout(120)
def test_corrupt_file_raises_instead_of_hanging(tmp_path, tiny):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(jpeg_bytes(0, 1)[:200])  # headers only, truncated scan
    s = tiny.samples("val")
    ds = Dataset("bad", tmp_path, tiny.classes, {"train": s, "val": [(str(bad), 0)] + s}, "bad")
    with make("val", ds, SPEC, "cpu") as loader:  # a hang fails by pytest-timeout
        with pytest.raises(DataError, match=r"bad\.jpg: cannot decode"):
            collect(loader)


# -- parity with the torchvision backend ----------------------------------------------------
def parity(tiny, split: str, device: str) -> float:
    ds = every_format_as_val(tiny)
    spec = PARITY.with_(workers=1)
    with make(split, ds, spec, device) as loader:
        a, ya = collect(loader)
    with build("torchvision", split, ds, spec.with_(device="cpu")) as loader:
        b, yb = collect(loader)
    assert ya.tolist() == yb.tolist(), "same order as the torchvision backend"
    diff = (levels(a, spec) - levels(b, spec)).abs()
    per_image = diff.mean((1, 2, 3))
    print(f"{split} {device}: mean |diff| {diff.mean():.3f} levels, worst image {per_image.max():.3f}")
    assert per_image.max() <= 2 * MAX_MEAN_LEVELS, per_image.tolist()
    return float(diff.mean())


@pytest.mark.parametrize("device", DEVICES)
def test_val_parity_with_torchvision_backend(device, tiny):
    assert parity(tiny, "val", device) <= MAX_MEAN_LEVELS


@pytest.mark.parametrize("device", DEVICES)
def test_train_crops_match_torchvision_backend(device, tiny):
    # Same (seed, epoch, index) RNG -> same crop box and flip; only resampling/decoder differ
    # (the CPU backend may decode with PIL's draft(), which shifts pixels a little).
    assert parity(tiny, "train", device) <= MAX_MEAN_LEVELS


# -- threads and early exits ----------------------------------------------------------------
def _threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix) and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("device", DEVICES)
def test_abandoned_iteration_stops_the_producer(device, tiny):
    base, base_read = _threads("tvgpu-produce"), _threads("tvgpu-read")
    with make("train", tiny, SPEC.with_(prefetch=1), device) as loader:
        for _ in range(3):
            it = iter(loader)
            next(it)
            it.close()  # what a `break` out of the loop does
        assert _threads("tvgpu-produce") == base
        assert sum(x.shape[0] for x, _ in loader) == loader.num_samples  # still usable
    assert _threads("tvgpu-read") == base_read, "close() joins the reading threads"


# -- CUDA only ----------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_through_the_registry(tiny):
    if "torchvision-gpu" not in loaders.REGISTRY:
        pytest.skip("torchvision-gpu not registered in loaders/__init__.py")
    with build("torchvision-gpu", "train", tiny, SPEC.with_(device="cuda")) as loader:
        x, y = next(iter(loader))
        assert x.is_cuda and y.is_cuda
        assert loader.describe()["decode_device"].startswith("cuda")


@pytest.mark.gpu
def test_cuda_grayscale_and_progressive_decode_on_device(tiny):
    # nvJPEG is expected to take grayscale (as RGB) and progressive JPEGs; what it refuses still
    # works (host fallback) but shows up here.
    with make("train", tiny, SPEC, "cuda") as loader:
        collect(loader)
        d = loader.facts()
    assert d["device_decode_errors"] == 0, d


@pytest.mark.gpu
def test_cuda_batches_are_ready_on_the_consumer_stream(tiny):
    # Batches are built on the producer's stream; the consumer must see finished pixels even
    # when its own stream is busy.
    with make("val", tiny, SPEC, "cuda") as loader:
        ref, _ = collect(loader)
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            got = []
            for x, _ in loader:
                torch.cuda._sleep(1_000_000)  # keep this stream busy
                got.append(x.float().cpu())
    assert torch.equal(torch.cat(got), ref)
