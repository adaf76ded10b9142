"""The Loader contract, checked for every registered backend (and all must be usable here:
CUDA-only ones run their CPU dry run)."""
from __future__ import annotations

import pytest
import torch

import loaders
from loaders import LoaderSpec, build
from tests.helpers import collect, images_digest

BACKENDS = list(loaders.REGISTRY)
SPEC = LoaderSpec(batch_size=4, res=32, val_res=32, workers=1, seed=3)
# The GPU backend runs the same suite on its device where CUDA is (`-m gpu`: bench/gpu_check.sh);
# here it runs on the CPU through its dry run.
ON_CUDA = ["torchvision-gpu"]


def cases(names):
    return ([pytest.param(n, "cpu", id=n) for n in names]
            + [pytest.param(n, "cuda", id=f"{n}-cuda", marks=pytest.mark.gpu) for n in names if n in ON_CUDA])


ALL = cases(BACKENDS)
REAL = cases([b for b in BACKENDS if loaders.role(b) != "ceiling"])  # the ceiling hands out one fixed batch


def open_loader(name, split, data, spec, device):
    return build(name, split, data, spec.with_(device=device))

pytestmark = [pytest.mark.usefixtures("dry_run_cuda_backends"),
              # torchvision >= 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")]


def test_every_backend_is_usable_on_this_machine():
    # DALI and FFCV are installed by `make` on this machine: none may hide behind a skip, and
    # the CUDA-only backends run here in their dry run.
    assert {k: v for k, v in loaders.available().items() if v} == {}
    assert loaders.ceiling() in BACKENDS and all(loaders.role(b) in loaders.ROLES for b in BACKENDS)


@pytest.mark.parametrize("name,device", ALL)
@pytest.mark.parametrize("split", ["train", "val"])
def test_batches_shape_dtype_layout_range(name, device, split, tiny):
    n = len(tiny.samples(split))
    with open_loader(name, split, tiny, SPEC, device) as loader:
        assert loader.num_samples == n
        sizes = []
        for x, y in loader:
            assert x.dtype == torch.float32 and x.device.type == device
            assert x.shape[1:] == (3, 32, 32)
            assert x.is_contiguous(memory_format=torch.channels_last)
            lo = (0 - max(SPEC.mean)) / min(SPEC.std)
            hi = (255 - min(SPEC.mean)) / min(SPEC.std)
            assert lo - 1e-3 <= x.min() and x.max() <= hi + 1e-3
            assert y.dtype == torch.int64 and y.shape == (x.shape[0],) and y.device.type == device
            assert 0 <= int(y.min()) and int(y.max()) < tiny.num_classes
            sizes.append(x.shape[0])
        assert sum(sizes) == n, "every sample exactly once per epoch"
        assert len(sizes) == len(loader)
        assert sizes[:-1] == [SPEC.batch_size] * (len(sizes) - 1), "only the last batch is short"


@pytest.mark.parametrize("name,device", REAL)
def test_val_is_imagefolder_order_and_deterministic(name, device, tiny):
    with open_loader(name, "val", tiny, SPEC, device) as loader:
        x1, y1 = collect(loader)
        x2, y2 = collect(loader)
    assert y1.tolist() == [label for _, label in tiny.samples("val")]
    assert torch.equal(x1, x2)


@pytest.mark.parametrize("name,device", REAL)
def test_train_order_follows_seed_and_epoch(name, device, tiny):
    def run(seed, epoch):
        with open_loader(name, "train", tiny, SPEC.with_(seed=seed), device) as loader:
            loader.set_epoch(epoch)
            x, y = collect(loader)
            return x, y.tolist(), [tiny.samples("train")[i][1] for i in loader.order()]

    (xa, a, order_a), (xb, b, _), (_, c, _) = run(3, 1), run(3, 1), run(3, 2)
    assert a == b, "same seed + epoch -> same order"
    assert a == order_a, "the batches follow order()"
    if name != "ffcv":  # FFCV draws its crops from numba's unseeded RNG; the others per sample
        assert torch.equal(xa, xb), "same seed + epoch -> same crops"
    assert a != c, "another epoch -> another order"
    assert sorted(a) == sorted(label for _, label in tiny.samples("train"))


@pytest.mark.parametrize("name,device", REAL)
def test_two_shards_cover_the_split_once(name, device, tiny):
    with open_loader(name, "val", tiny, SPEC, device) as loader:
        whole = sorted(images_digest(collect(loader)[0]))
    parts = []
    for rank in range(2):
        with open_loader(name, "val", tiny, SPEC.with_(rank=rank, world=2), device) as loader:
            x, _ = collect(loader)
            assert x.shape[0] == loader.num_samples
            parts += images_digest(x)
    assert sorted(parts) == whole


@pytest.mark.parametrize("name,device", ALL)
def test_set_resolution_changes_train_size(name, device, tiny):
    with open_loader(name, "train", tiny, SPEC, device) as loader:
        assert next(iter(loader))[0].shape[-1] == 32
        loader.set_resolution(48)
        loader.set_epoch(1)
        x, _ = next(iter(loader))
        assert x.shape[-2:] == (48, 48)
        assert sum(x.shape[0] for x, _ in loader) == loader.num_samples
    with open_loader(name, "val", tiny, SPEC, device) as loader, pytest.raises(ValueError):
        loader.set_resolution(48)


@pytest.mark.parametrize("name,device", ALL)
@pytest.mark.parametrize("channels_last", [True, False])
def test_bfloat16_output_in_either_layout(name, device, channels_last, tiny):
    with open_loader(name, "val", tiny, SPEC.with_(dtype="bfloat16", channels_last=channels_last), device) as loader:
        x, _ = next(iter(loader))
    assert x.dtype == torch.bfloat16
    assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("name,device", ALL)
def test_settings_and_facts_are_apart(name, device, tiny):
    """describe() is the configuration (the same for two loaders built alike), facts() what
    one run observed: no key in both."""
    with open_loader(name, "train", tiny, SPEC, device) as a, open_loader(name, "train", tiny, SPEC, device) as b:
        collect(a)
        collect(b)
        assert a.describe() == b.describe() and a.describe()["backend"] == name
        assert not set(a.describe()) & set(a.facts())


# backends whose resumed pass (set_epoch(e, start_batch=k)) has the same crops too; FFCV resumes
# the order only (its crops come from numba's unseeded RNG: tests/test_prefetch.py)
RESUMABLE = [("torchvision", {"pool": "threads"}), ("torchvision", {"pool": "processes"}), ("dali-cpu", {})]


@pytest.mark.parametrize("name,options", RESUMABLE, ids=["torchvision-threads", "torchvision-processes", "dali-cpu"])
def test_a_pass_can_start_mid_epoch_with_the_same_batches(name, options, tiny):
    """set_epoch(e, start_batch=k): the pass yields the uninterrupted epoch's batches from k on
    (same samples, same crops), and the pass after it starts at the beginning again."""
    spec = SPEC.with_(workers=2, options=options)
    with build(name, "train", tiny, spec) as loader:
        loader.set_epoch(2)
        whole = [(x.clone(), y.clone()) for x, y in loader]
        loader.set_epoch(2, start_batch=2)
        tail = [(x.clone(), y.clone()) for x, y in loader]
        again = [y.clone() for _, y in loader]
    assert len(tail) == len(whole) - 2
    for (xa, ya), (xb, yb) in zip(whole[2:], tail):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert torch.equal(torch.cat(again), torch.cat([y for _, y in whole]))
    with build(name, "train", tiny, spec) as loader, pytest.raises(ValueError, match="start_batch"):
        loader.set_epoch(0, start_batch=len(loader) + 1)
