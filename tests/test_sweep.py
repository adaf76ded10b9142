"""An --arch sweep survives an architecture that fails half-way through training: that one
becomes an error record naming the exception, and the next architecture still trains."""
from __future__ import annotations

import json

import torch
import torch.nn as nn

import models
from bench.run import main


class FailsOnThirdStep(nn.Module):
    """Trains for two steps, then raises as an out-of-memory would, from inside the forward."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated out of memory in step 3")
        return self.fc(x.float().mean(dim=(2, 3)))


def test_a_failure_during_training_becomes_a_record_and_the_sweep_goes_on(tiny_root, tmp_path, monkeypatch):
    calls = []

    def build(num_classes, res=224, small=False):
        calls.append(res)
        return FailsOnThirdStep(num_classes)

    monkeypatch.setitem(models._REGISTRY, "fails_midway", models.Arch(build, min_res=8))
    out = tmp_path / "r.jsonl"
    code = main(["--mode", "accuracy", "--loader", "torchvision", "--arch", "fails_midway,seed_cnn", "--data", str(tiny_root),
                 "--epochs", "2", "--batch-size", "4", "--res", "32", "--amp", "off", "--no-progress", "--out", str(out)])
    assert code == 0  # one architecture trained
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert calls == [32]  # the failing one was built and started training
    assert [(r["arch"], r["kind"], r["status"]) for r in recs] == [
        ("fails_midway", "accuracy", "error"),
        ("seed_cnn", "epoch", "ok"), ("seed_cnn", "epoch", "ok"), ("seed_cnn", "accuracy", "ok")]
    assert recs[0]["error"] == "RuntimeError: simulated out of memory in step 3"
    final = recs[-1]
    assert final["metrics"]["epochs"] == 2 and final["metrics"]["params"] == sum(
        p.numel() for p in models.create("seed_cnn", 3, res=32).parameters())
    assert final["config"]["model_variant"] == "native" and final["config"].get("transfer") is None  # not a transfer arm
    assert torch.get_num_threads() >= 1


def test_a_diverged_run_is_an_error_record_not_chance_accuracy(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    code = main(["--mode", "accuracy", "--loader", "torchvision", "--arch", "seed_cnn", "--data", str(tiny_root), "--epochs", "3",
                 "--batch-size", "4", "--res", "32", "--amp", "off", "--lr", "1e30", "--no-progress", "--out", str(out)])
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 1 and [(r["kind"], r["status"]) for r in recs] == [("accuracy", "error")]
    assert recs[0]["error"].startswith("FloatingPointError: training diverged in epoch 1: the train loss is nan")
