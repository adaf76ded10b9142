"""No hang: a DataLoader worker killed mid-epoch, a decode thread or FFCV's batch thread raising,
DALI's reader failing mid-epoch: the pass ends with one line within seconds. pytest-timeout
turns a hang into a failure instead of a stuck suite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loaders import LoaderSpec, build
from loaders.datasets import DataError, scan
from loaders.faults import LoaderFailure
from tests.helpers import make_imagefolder

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
REPO = Path(__file__).resolve().parents[1]
WITHIN_S = 30  # "within seconds", as timeouts (no wall-clock assertion): torch checks its workers every 5 s


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Enough small images for an epoch that outlasts the prefetched batches."""
    root = make_imagefolder(tmp_path_factory.mktemp("many"), train=(20, 20), val=(12, 12), odd_formats=False)
    return scan(root, progress=False)


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_a_killed_dataloader_worker_ends_the_pass_in_one_line(many):
    spec = LoaderSpec(batch_size=2, res=32, workers=2, options={"pool": "processes"})
    with build("torchvision", "train", many, spec) as loader:
        it = iter(loader)
        next(it)
        pids = [w.pid for w in loader._dl._iterator._workers]
        with pytest.raises((LoaderFailure, RuntimeError)) as e:
            os.kill(pids[0], signal.SIGKILL)
            for _ in it:
                pass
    assert "DataLoader worker" in _one_line(e.value) and str(pids[0]) in str(e.value)


def test_a_raising_decode_thread_ends_the_pass(many, monkeypatch):
    import loaders.torchvision as tv

    real = tv._fill

    def broken(out, path, split, spec, res, epoch, index):
        if index == 7:
            raise RuntimeError("a bug in the decoder")
        real(out, path, split, spec, res, epoch, index)

    monkeypatch.setattr(tv, "_fill", broken)
    with build("torchvision", "val", many, LoaderSpec(batch_size=2, res=32, val_res=32, workers=2)) as loader:
        with pytest.raises(RuntimeError, match="a bug in the decoder"):
            for _ in loader:
                pass


def test_a_raising_ffcv_thread_ends_the_pass_in_one_line(many, monkeypatch):
    from ffcv.loader.epoch_iterator import EpochIterator

    real = EpochIterator.run_pipeline

    def broken(self, b_ix, *args):
        if b_ix == 2:
            raise MemoryError("no room for the batch")
        return real(self, b_ix, *args)

    spec = LoaderSpec(batch_size=2, res=32, workers=2, options={"progress": False})
    # patched before the loader is made: its first epoch's iterator starts (warm) in the constructor
    monkeypatch.setattr(EpochIterator, "run_pipeline", broken)
    with build("ffcv", "train", many, spec) as loader:
        with pytest.raises(LoaderFailure, match=r"ffcv: its batch thread died mid-epoch \(MemoryError: no room for the batch\)") as e:
            for _ in loader:
                pass
    _one_line(e.value)


def test_a_file_gone_mid_epoch_stops_dali_in_one_line(tmp_path):
    root = make_imagefolder(tmp_path / "d", train=(12, 12), val=(2, 2), odd_formats=False)
    ds = scan(root, progress=False)
    with build("dali-cpu", "train", ds, LoaderSpec(batch_size=2, res=32, workers=2, prefetch=1)) as loader:
        late = ds.samples("train")[loader.order()[-1]][0]  # read by DALI's reader thread at the epoch's end
        it = iter(loader)
        next(it)
        os.remove(late)
        with pytest.raises(DataError, match="gone since the scan") as e:
            for _ in it:
                pass
    assert Path(late).name in _one_line(e.value)


def test_an_unexplained_dali_failure_is_one_line():
    from collections import deque
    from types import SimpleNamespace

    import numpy as np

    from loaders.dali_source import Item
    from loaders.decode_errors import DaliGuard
    from loaders.prefetch import Pass

    class Pipe:
        def share_outputs(self):
            raise RuntimeError("Critical error in pipeline:\nsomething native\nC++ stack trace ...")

    class Stream:  # one batch in flight whose files the strict decoder finds fine (there are none)
        pipe, feed = Pipe(), SimpleNamespace(inflight=deque([Item(Pass(0, 32, 0), 0, np.zeros(0, np.int64), [])]))

        def head(self):
            return self.feed.inflight[0]

        def drop(self):
            self.pipe = self.feed = None

    class Loader:
        samples, spec, dataset, stats, epoch, _stream = [], LoaderSpec(batch_size=2), None, {}, 0, Stream()

    with DaliGuard(Loader()) as guard, pytest.raises(LoaderFailure, match=r"^dali: its pipeline failed at batch 0 \(Critical error in pipeline:\)$"):
        guard.outputs()


def _is_worker(child) -> bool:
    """A forked DataLoader worker (not multiprocessing's resource tracker)."""
    import psutil

    try:
        return "resource_tracker" not in " ".join(child.cmdline())
    except psutil.Error:  # gone meanwhile
        return False


def test_the_run_ends_in_one_line_when_a_worker_is_killed(tmp_path):
    """End to end: bench.run's DataLoader worker SIGKILLed mid-run -> exit within seconds, one
    `error:` line saying a worker died, no traceback."""
    import psutil

    root = make_imagefolder(tmp_path / "d", train=(20, 20), val=(2, 2), odd_formats=False)
    env = {**os.environ, "LOADERBENCH_DATA": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-m", "bench.run", "--mode", "loader", "--loader", "torchvision", "--data", str(root),
                          "--no-progress", "--steps", "1000000", "--batch-size", "2", "--res", "32", "--workers", "2",
                          "--loader-options", "pool=processes", "--out", str(tmp_path / "r.jsonl")],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.2)
            workers = [c for c in psutil.Process(p.pid).children() if _is_worker(c)]
        assert len(workers) >= 2, "the DataLoader workers never started"
        time.sleep(1.0)
        workers[0].kill()
        _, err = p.communicate(timeout=WITHIN_S)  # TimeoutExpired: it hung
    finally:
        if p.poll() is None:
            p.kill()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert "Traceback" not in err, err
    assert [line for line in lines if "worker" in line.lower()] == [line for line in lines if line.startswith("error:")], err
    assert len([line for line in lines if line.startswith("error:")]) == 1 and "DataLoader worker" in err, err
