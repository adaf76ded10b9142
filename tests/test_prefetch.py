"""Cross-epoch prefetch (loaders/prefetch.py): a loader read epoch after epoch, whose next
pass's first batches were in flight before the previous pass ended, gives bit for bit the
batches a fresh loader gives for each pass on its own, through a set_resolution at an epoch
boundary and a start_batch; and the guessed passes really were prefetched."""
from __future__ import annotations

import pytest
import torch

from loaders import LoaderSpec, build
from loaders.prefetch import JobStream, Pass, following

SPEC = LoaderSpec(batch_size=4, res=32, val_res=32, workers=2, prefetch=2, seed=5)
# (epoch, res, start_batch) read in this order by one loader; prefetch hits: epochs 1 and 4
# (each follows a pass read to its end at the same resolution); 2 changes res, 3 starts mid-epoch.
PASSES = [(0, 32, 0), (1, 32, 0), (2, 40, 0), (3, 40, 1), (4, 40, 0)]
HITS = 2

# (backend, options): every pool and backend that prefetches across epochs
CASES = [("torchvision", {"pool": "threads"}), ("torchvision", {"pool": "processes"}),
         ("torchvision", {"pool": "processes", "chunk": 3}), ("dali-cpu", {}), ("ffcv", {})]
IDS = ["tv-threads", "tv-processes", "tv-processes-chunk3", "dali-cpu", "ffcv"]
CROPS_SEEDED = {"torchvision", "dali-cpu"}  # FFCV's crops come from numba's unseeded RNG


def read(loader, epoch, res, start):
    if res != loader.res:
        loader.set_resolution(res)
    loader.set_epoch(epoch, start_batch=start)
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b, pixels=True):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb)
        assert xa.shape == xb.shape
        if pixels:
            assert torch.equal(xa, xb)


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_train_batches_with_prefetch_equal_each_pass_alone(name, options, tiny):
    spec = SPEC.with_(options=options)
    with build(name, "train", tiny, spec) as loader:
        continuous = [read(loader, *p) for p in PASSES]
        prefetched = loader.facts()["passes_prefetched"]
    for p, got in zip(PASSES, continuous):
        # the order: the uninterrupted epoch's from the start batch on (labels, every backend)
        order = loader.order(p[0])[p[2] * spec.batch_size:]
        assert torch.cat([y for _, y in got]).tolist() == [tiny.samples("train")[i][1] for i in order]
        if name in CROPS_SEEDED:  # FFCV's crops are not reproducible: nothing more to compare
            with build(name, "train", tiny, spec) as fresh:
                same(got, read(fresh, *p))
    assert [len(b) for b in continuous] == [4, 4, 4, 3, 4]  # 15 images, batch 4; start_batch 1
    assert {tuple(b[0][0].shape[2:]) for b in continuous[2:]} == {(40, 40)}
    assert prefetched == HITS


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_val_passes_are_prefetched_and_identical(name, options, tiny):
    with build(name, "val", tiny, SPEC.with_(options=options)) as loader:
        passes = [read(loader, e, 32, 0) for e in range(3)]
        prefetched = loader.facts()["passes_prefetched"]
    same(passes[0], passes[1])
    same(passes[0], passes[2])
    assert prefetched == 2


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_an_abandoned_pass_then_the_next_epoch(name, options, tiny):
    """A pass left after one batch drops what was in flight: the next epoch is still exact."""
    spec = SPEC.with_(options=options)
    with build(name, "train", tiny, spec) as loader:
        loader.set_epoch(0)
        next(iter(loader))
        got = read(loader, 1, 32, 0)
    with build(name, "train", tiny, spec) as fresh:
        same(got, read(fresh, 1, 32, 0), pixels=name in CROPS_SEEDED)


def test_job_stream_runs_into_the_next_pass_and_drops_a_wrong_guess():
    class L:  # the loader surface prefetch uses
        shuffle = True

    submitted, cancelled = [], []
    plan = lambda p: [(p.epoch, k) for k in range(3)]  # noqa: E731
    stream = JobStream(L(), 2, plan, lambda p, item: submitted.append(item) or item, lambda h: h, cancelled.append)
    assert list(stream.run(Pass(0, 32, 0))) == plan(Pass(0, 32, 0))
    assert submitted[-2:] == [(1, 0), (1, 1)]  # the next epoch's first two, before pass 0 ended
    assert list(stream.run(Pass(1, 32, 0))) == plan(Pass(1, 32, 0)) and stream.prefetched == 1
    assert list(stream.run(Pass(2, 48, 0))) == plan(Pass(2, 48, 0))  # guess was (2, 32, 0)
    assert cancelled == [(2, 0), (2, 1)] and stream.prefetched == 1
    assert following(L(), Pass(2, 48, 3)) == Pass(3, 48, 0)
