"""Preemption: a run stopped mid-epoch (SIGTERM/SIGINT) writes a checkpoint that says where it
stood, and `--resume auto` continues from that batch to exactly the uninterrupted run's result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli.config import RunConfig
from bench.harness import accuracy_mode
from bench.harness.preempt import Preempted
from tests.helpers import cpu_context, make_imagefolder

REPO = Path(__file__).resolve().parent.parent
EXACT = ("top1", "top5", "loss", "samples_seen", "val_samples", "epochs")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from loaders.datasets import scan

    return scan(make_imagefolder(tmp_path_factory.mktemp("pre"), train=(8, 7, 9), val=(3, 3, 2), odd_formats=False), progress=False)


def config(ckpt, **kw):
    base = dict(mode="accuracy", arch="seed_cnn", res=32, batch_size=4, epochs=3, amp="off", progress=False, lr=0.3,
                checkpoint_dir=str(ckpt))
    return RunConfig.of(**{**base, **kw})


def stop_at(monkeypatch, epoch: int, batch: int):
    """Make the run's stop flag fire after `batch` steps of epoch `epoch` (0-based), as a
    signal arriving during that step would."""
    from bench.harness import preempt

    real = preempt.StopFlag.stop

    def stop(self, b):
        if getattr(self, "_state", None) is None:
            self._state = {"epoch": 0, "last": -1}
        if b < self._state["last"]:
            self._state["epoch"] += 1
        self._state["last"] = b
        if self._state["epoch"] == epoch and b == batch:
            self.signum = signal.SIGTERM
        return real(self, b)

    monkeypatch.setattr(preempt.StopFlag, "stop", stop)


# DALI too: its crops come from the same per-sample RNG (loaders/dali_source.py), so a resumed
# pass decodes the very batches the uninterrupted one did. (FFCV's crops are numba's: order only.)
@pytest.mark.parametrize("name", ["torchvision", "dali-cpu"])
@pytest.mark.parametrize("epoch,batch", [(1, 3), (0, 1), (2, 6)])
def test_resumed_mid_epoch_run_ends_with_the_uninterrupted_metrics(name, epoch, batch, data, tmp_path, monkeypatch):
    full = accuracy_mode.run(cpu_context(config(tmp_path / "a"), data), name, "seed_cnn")
    with monkeypatch.context() as m:
        stop_at(m, epoch, batch)
        with pytest.raises(Preempted, match=rf"stopped by SIGTERM at epoch {epoch + 1}, batch {batch}: checkpoint written to .*; continue with --resume auto") as e:
            accuracy_mode.run(cpu_context(config(tmp_path / "b"), data), name, "seed_cnn")
    assert e.value.exit_code == 128 + signal.SIGTERM and len(e.value.records) == epoch
    blob = torch.load(tmp_path / "b" / f"seed_cnn-{name}-last.pt", weights_only=False)
    assert (blob["epoch"], blob["batch"]) == (epoch, batch) and len(blob["partial"]["losses"]) == batch
    resumed = accuracy_mode.run(cpu_context(config(tmp_path / "b", resume="auto"), data), name, "seed_cnn")
    assert [r["metrics"]["epoch"] for r in resumed if r["kind"] == "epoch"] == list(range(epoch + 1, 4))
    for a, b in zip([r for r in full if r["kind"] == "epoch"][epoch:], [r for r in resumed if r["kind"] == "epoch"]):
        assert {k: a["metrics"][k] for k in ("top1", "top5", "loss", "train_loss", "samples_seen")} == \
               {k: b["metrics"][k] for k in ("top1", "top5", "loss", "train_loss", "samples_seen")}
    assert {k: full[-1]["metrics"][k] for k in EXACT} == {k: resumed[-1]["metrics"][k] for k in EXACT}


def test_sigterm_to_the_process_stops_cleanly_and_resumes(data, tmp_path):
    """A real signal: the process finishes its step, writes the checkpoint, says so in one
    line, exits 143 with no traceback; the resumed run ends like the uninterrupted one."""
    def cmd(ckpt, out, *extra):
        return [sys.executable, "-m", "bench.run", "--no-progress", "--mode", "accuracy", "--loader", "torchvision", "--arch", "seed_cnn",
                "--data", str(data.root), "--res", "32", "--batch-size", "2", "--epochs", "3", "--amp", "off", "--lr", "0.3",
                "--checkpoint-dir", str(ckpt), "--out", str(out), *extra]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(cmd(tmp_path / "a", tmp_path / "a.jsonl"), cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert full.returncode == 0, full.stderr
    p = subprocess.Popen(cmd(tmp_path / "b", tmp_path / "b.jsonl"), cwd=REPO, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in p.stderr:  # the signal lands in epoch 2, once epoch 1's line is out
        lines.append(line)
        if line.startswith("epoch 1/3"):
            p.send_signal(signal.SIGTERM)
            break
    rest = p.stderr.read()
    assert p.wait(timeout=120) == 128 + signal.SIGTERM
    err = "".join(lines) + rest
    assert "Traceback" not in err and "stopped by SIGTERM" in err, err
    blob = torch.load(tmp_path / "b" / "seed_cnn-torchvision-last.pt", weights_only=False)
    assert blob["epoch"] in (1, 2)
    resumed = subprocess.run(cmd(tmp_path / "b", tmp_path / "b.jsonl", "--resume", "auto"), cwd=REPO, capture_output=True, text=True,
                             env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    last = lambda f: [json.loads(x) for x in f.read_text().splitlines()][-1]["metrics"]  # noqa: E731
    a, b = last(tmp_path / "a.jsonl"), last(tmp_path / "b.jsonl")
    assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}
