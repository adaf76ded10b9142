"""torchrun + gloo on this CPU machine: exact sample accounting on every backend, the same
evaluation as one rank, and resume under DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_imagefolder

REPO = Path(__file__).resolve().parent.parent
BACKENDS = os.environ.get("LB_DDP_BACKENDS", "torchvision,dali,ffcv")
TRAIN, VAL = (4, 3, 2), (3, 2, 2)  # 9 train, 7 val: odd, and ranks get unequal batch counts


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return make_imagefolder(tmp_path_factory.mktemp("odd"), train=TRAIN, val=VAL, odd_formats=False)


def bench(tmp, nproc, *args):
    out = tmp / f"r{nproc}-{len(list(tmp.glob('*.jsonl')))}.jsonl"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc > 1 else [sys.executable]
    cmd = [*launcher, "-m", "bench.run", "--no-progress", "--batch-size", "4", "--res", "32", "--amp", "off", "--arch", "demo_net",
           "--loader", BACKENDS, "--out", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs]
    return recs


def by_loader(recs, kind):
    return {r["loader"]: r for r in recs if r["kind"] == kind}


def test_two_ranks_exact_accounting_same_eval_and_resume(odd, tmp_path):
    ckpt = tmp_path / "ckpt"
    trained = bench(tmp_path, 2, "--mode", "accuracy", "--epochs", "1", "--data", str(odd), "--checkpoint-dir", str(ckpt))
    assert len({r["run_id"] for r in trained}) == 1, "one writer (rank 0)"
    for name, rec in by_loader(trained, "accuracy").items():
        assert rec["config"]["world_size"] == 2
        assert rec["metrics"]["samples_seen"] == sum(TRAIN), name
        assert rec["metrics"]["val_samples"] == sum(VAL), name

    weights = ckpt / "demo_net-torchvision-last.pt"
    one = by_loader(bench(tmp_path, 1, "--mode", "eval", "--data", str(odd), "--init", str(weights)), "eval")
    two = by_loader(bench(tmp_path, 2, "--mode", "eval", "--data", str(odd), "--init", str(weights)), "eval")
    for name in BACKENDS.split(","):
        assert two[name]["metrics"]["val_samples"] == one[name]["metrics"]["val_samples"] == sum(VAL)
        for k in ("top1", "top5"):
            assert two[name]["metrics"][k] == one[name]["metrics"][k], (name, k)
        assert two[name]["metrics"]["loss"] == pytest.approx(one[name]["metrics"]["loss"], abs=2e-4)

    resumed = bench(tmp_path, 2, "--mode", "accuracy", "--epochs", "2", "--data", str(odd), "--checkpoint-dir", str(ckpt), "--resume", "auto")
    epochs = [r for r in resumed if r["kind"] == "epoch"]
    assert sorted(r["loader"] for r in epochs) == sorted(BACKENDS.split(","))
    for r in epochs:
        assert r["metrics"]["epoch"] == 2, "continued after the checkpointed epoch"
        assert r["metrics"]["samples_seen"] == sum(TRAIN) and r["metrics"]["val_samples"] == sum(VAL)


@pytest.fixture(scope="module")
def even(tmp_path_factory):
    return make_imagefolder(tmp_path_factory.mktemp("even"), train=(4, 4, 2), val=(3, 2, 2), odd_formats=False)


def test_sigterm_to_the_group_stops_every_rank_cleanly_and_resumes(even, tmp_path):
    """SIGTERM to torchrun's process group mid-run: the ranks agree on the step to stop at,
    rank 0 writes the checkpoint, every rank exits without a traceback; resuming under torchrun
    ends with the uninterrupted 2-rank run's metrics. (Shards of equal size: with uneven ones
    the rank with a batch less keeps its own momentum buffers, and only rank 0's are saved, so
    a resumed run is close but not bit-identical; README, torchrun.)"""
    import signal

    odd = even
    full = bench(tmp_path, 2, "--mode", "accuracy", "--epochs", "3", "--data", str(odd), "--loader", "torchvision",
                 "--batch-size", "1", "--checkpoint-dir", str(tmp_path / "a"))
    out, ckpt = tmp_path / "stopped.jsonl", tmp_path / "b"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench.run", "--no-progress",
           "--batch-size", "1", "--res", "32", "--amp", "off", "--arch", "demo_net", "--loader", "torchvision", "--mode", "accuracy",
           "--epochs", "3", "--data", str(odd), "--checkpoint-dir", str(ckpt), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         start_new_session=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if line.startswith("epoch 1/3"):
            os.killpg(p.pid, signal.SIGTERM)
            break
    seen.append(p.stderr.read())
    p.wait(timeout=120)
    err = "".join(seen)
    assert p.returncode != 0 and "stopped by SIGTERM" in err, err[-3000:]
    ours = [line for line in err.splitlines() if "bench/" in line and "File " in line]
    assert not ours, "no traceback through our code: " + "\n".join(ours)
    blob = __import__("torch").load(ckpt / "demo_net-torchvision-last.pt", weights_only=False)
    assert blob["epoch"] >= 1
    resumed = bench(tmp_path, 2, "--mode", "accuracy", "--epochs", "3", "--data", str(odd), "--loader", "torchvision",
                    "--batch-size", "1", "--checkpoint-dir", str(ckpt), "--resume", "auto")
    a, b = by_loader(full, "accuracy")["torchvision"]["metrics"], by_loader(resumed, "accuracy")["torchvision"]["metrics"]
    for k in ("top1", "top5", "loss", "samples_seen", "val_samples", "epochs"):
        assert a[k] == b[k], k
