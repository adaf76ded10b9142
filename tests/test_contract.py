"""The Loader contract, checked for every backend registered (and all must be usable here)."""
from __future__ import annotations

import pytest
import torch

import loaders
from loaders import LoaderSpec, build
from tests.conftest import collect, images_digest

BACKENDS = loaders.names(runnable_here=True)
SPEC = LoaderSpec(batch_size=4, res=32, val_res=32, workers=1, seed=3)


def test_every_backend_is_usable_on_this_machine():
    # DALI and FFCV are installed by `make` on this machine: none may hide behind a skip.
    # Only a CUDA-only backend may be missing, and only where there is no CUDA.
    missing = {k: v for k, v in loaders.available().items() if v}
    cuda_only = {k for k, b in loaders.REGISTRY.items() if b.needs_cuda}
    assert set(missing) <= (set() if torch.cuda.is_available() else cuda_only), missing
    assert all("CUDA" in why for why in missing.values())


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("split", ["train", "val"])
def test_batches_shape_dtype_layout_range(name, split, tiny):
    n = len(tiny.samples(split))
    with build(name, split, tiny, SPEC) as loader:
        assert loader.num_samples == n
        sizes = []
        for x, y in loader:
            assert x.dtype == torch.float32 and x.device.type == "cpu"
            assert x.shape[1:] == (3, 32, 32)
            assert x.is_contiguous(memory_format=torch.channels_last)
            lo = (0 - max(SPEC.mean)) / min(SPEC.std)
            hi = (255 - min(SPEC.mean)) / min(SPEC.std)
            assert lo - 1e-3 <= x.min() and x.max() <= hi + 1e-3
            assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
            assert 0 <= int(y.min()) and int(y.max()) < tiny.num_classes
            sizes.append(x.shape[0])
        assert sum(sizes) == n, "every sample exactly once per epoch"
        assert len(sizes) == len(loader)


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "synthetic"])
def test_val_is_imagefolder_order_and_deterministic(name, tiny):
    with build(name, "val", tiny, SPEC) as loader:
        x1, y1 = collect(loader)
        x2, y2 = collect(loader)
    assert y1.tolist() == [label for _, label in tiny.samples("val")]
    assert torch.equal(x1, x2)


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "synthetic"])
def test_train_order_follows_seed_and_epoch(name, tiny):
    def labels(seed, epoch):
        with build(name, "train", tiny, SPEC.with_(seed=seed)) as loader:
            loader.set_epoch(epoch)
            return collect(loader)[1].tolist()

    a, b, c = labels(3, 1), labels(3, 1), labels(3, 2)
    assert a == b, "same seed + epoch -> same order"
    assert a != c, "another epoch -> another order"
    assert sorted(a) == sorted(label for _, label in tiny.samples("train"))


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "synthetic"])
def test_two_shards_cover_the_split_once(name, tiny):
    with build(name, "val", tiny, SPEC) as loader:
        whole = sorted(images_digest(collect(loader)[0]))
    parts = []
    for rank in range(2):
        with build(name, "val", tiny, SPEC.with_(rank=rank, world=2)) as loader:
            x, _ = collect(loader)
            assert x.shape[0] == loader.num_samples
            parts += images_digest(x)
    assert sorted(parts) == whole


@pytest.mark.parametrize("name", BACKENDS)
def test_set_resolution_changes_train_size(name, tiny):
    with build(name, "train", tiny, SPEC) as loader:
        assert next(iter(loader))[0].shape[-1] == 32
        loader.set_resolution(48)
        loader.set_epoch(1)
        x, _ = next(iter(loader))
        assert x.shape[-2:] == (48, 48)


@pytest.mark.parametrize("name", BACKENDS)
def test_bfloat16_output(name, tiny):
    with build(name, "val", tiny, SPEC.with_(dtype="bfloat16")) as loader:
        x, _ = next(iter(loader))
    assert x.dtype == torch.bfloat16
