"""The training core: it learns, AMP and channels_last are in effect, fp16 scales its loss,
the schedules, resume is exact, and the same loop runs on every backend."""
from __future__ import annotations

import pytest
import torch

import loaders
from bench.cli.config import RunConfig
from bench.harness import accuracy_mode
from bench.training import checkpoint
from bench.training.compute import build_model
from bench.training.loop import train_step
from bench.training.state import lr_factor, make_state, param_groups, res_at
from tests.helpers import cpu_context

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def embedded():
    return loaders.resolve("embedded", progress=False)


def test_short_run_learns_well_above_chance(embedded):
    cfg = RunConfig.of(mode="accuracy", loader="torchvision", arch="demo_net", res=64, epochs=6, batch_size=64, lr=0.8, progress=False)
    records = accuracy_mode.run(cpu_context(cfg, embedded, workers=1), "torchvision", "demo_net")
    final = records[-1]
    assert [r["kind"] for r in records] == ["epoch"] * 6 + ["accuracy"]
    assert final["metrics"]["top1"] >= 0.35, final["metrics"]  # chance is 0.10
    assert records[0]["metrics"]["samples_seen"] == len(embedded.samples("train"))
    assert final["metrics"]["val_samples"] == len(embedded.samples("val"))
    assert final["metrics"]["params"] == sum(p.numel() for p in build_model("demo_net", 10, 64, CPU).parameters())


@pytest.mark.parametrize("name", ["torchvision", "synthetic"])
def test_amp_and_channels_last_in_effect(name, tiny):
    spec = loaders.LoaderSpec(batch_size=4, res=32, workers=0, dtype="bfloat16")
    model = build_model("resnet18", tiny.num_classes, 32, CPU, channels_last=True)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype, cl=o.is_contiguous(memory_format=torch.channels_last)))
    state = make_state(model, RunConfig().optim, CPU, torch.bfloat16, 4)
    with loaders.build(name, "train", tiny, spec) as loader:
        images, labels = next(iter(loader))
        assert images.dtype == torch.bfloat16 and images.is_contiguous(memory_format=torch.channels_last)
        loss = train_step(state, images, labels, 0.01)
    assert seen == {"dtype": torch.bfloat16, "cl": True}
    assert torch.isfinite(loss)
    off = make_state(model, RunConfig().optim, CPU, None, 4)
    train_step(off, images.float(), labels, 0.01)
    assert seen["dtype"] == torch.float32


def test_fp16_steps_go_through_the_grad_scaler(monkeypatch):
    """fp16 needs loss scaling: the scaler is on, the backward sees the scaled loss, the
    optimiser steps with unscaled gradients (the weights move as an unscaled SGD step would)."""
    torch.manual_seed(0)
    model = build_model("demo_net", 3, 32, CPU)
    state = make_state(model, RunConfig.of(momentum=0.0, weight_decay=0.0).optim, CPU, torch.float16, 4)
    assert state.scaler.is_enabled() and state.scaler.get_scale() > 1
    scaled = []
    real_scale = state.scaler.scale
    monkeypatch.setattr(state.scaler, "scale", lambda loss: scaled.append(float(loss.detach())) or real_scale(loss))
    x, y = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last), torch.tensor([0, 1, 2, 0])
    before = model.fc.weight.detach().clone()
    loss = train_step(state, x, y, 0.1)
    assert scaled == [pytest.approx(float(loss))]
    step = (before - model.fc.weight.detach()).abs().max()
    assert 0 < step < 1.0, "the update is an unscaled SGD step, not one multiplied by the loss scale"
    off = make_state(model, RunConfig().optim, CPU, torch.bfloat16, 4)
    assert not off.scaler.is_enabled(), "bf16 has fp32's range: no scaling"


def test_no_weight_decay_on_bn_and_bias():
    model = build_model("resnet18", 10, 32, CPU)
    for g in param_groups(model, 5e-5):
        for p in g["params"]:
            assert (g["weight_decay"] == 0) == (p.ndim <= 1)


def test_lr_schedules():
    s = RunConfig.of(epochs=10, lr_peak_epoch=2).schedule
    assert lr_factor(2, s) == pytest.approx(1.0) and lr_factor(10, s) == pytest.approx(0.0)
    assert lr_factor(1, s) == pytest.approx(0.5, abs=1e-3)
    step = RunConfig.of(epochs=10, lr_schedule="step", step_length=3, step_ratio=0.1, warmup_epochs=1).schedule
    assert lr_factor(0.5, step) == 0.5 and lr_factor(3.5, step) == pytest.approx(0.1)
    cos = RunConfig.of(epochs=10, lr_schedule="cosine").schedule
    assert lr_factor(0, cos) == 1.0 and lr_factor(5, cos) == pytest.approx(0.5) and lr_factor(10, cos) == pytest.approx(0)


def test_progressive_resizing_schedule():
    s = RunConfig.of(epochs=16, min_res=160, max_res=192, start_ramp=11, end_ramp=13).schedule
    assert [res_at(e, s, 224) for e in (0, 11, 12, 13, 15)] == [160, 160, 192, 192, 192]
    assert res_at(3, RunConfig().schedule, 96) == 96


def test_resume_reproduces_uninterrupted_run(tiny, tmp_path, monkeypatch):
    base = RunConfig.of(mode="accuracy", arch="demo_net", res=32, batch_size=4, epochs=2, amp="off", progress=False, lr=0.2)
    full = accuracy_mode.run(cpu_context(base.replace(checkpoint_dir=str(tmp_path / "a")), tiny), "torchvision", "demo_net")

    real_save = checkpoint.save

    def save_then_die(*a, **kw):  # the process is killed right after the first checkpoint
        real_save(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        accuracy_mode.run(cpu_context(base.replace(checkpoint_dir=str(tmp_path / "b")), tiny), "torchvision", "demo_net")
    monkeypatch.setattr(checkpoint, "save", real_save)
    resumed = accuracy_mode.run(cpu_context(base.replace(checkpoint_dir=str(tmp_path / "b"), resume="auto"), tiny), "torchvision", "demo_net")
    assert [r["metrics"]["epoch"] for r in resumed if r["kind"] == "epoch"] == [2]
    a = torch.load(tmp_path / "a" / "demo_net-torchvision-last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "demo_net-torchvision-last.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert full[-1]["metrics"]["top1"] == resumed[-1]["metrics"]["top1"]
    assert full[-1]["metrics"]["wall_s"] > 0 and resumed[-1]["metrics"]["epochs"] == 2


@pytest.mark.usefixtures("dry_run_cuda_backends")
@pytest.mark.parametrize("name", [n for n in loaders.REGISTRY if loaders.role(n) != "ceiling"])
def test_one_epoch_through_the_core_on_every_backend(name, tiny):
    """The trainer has no per-backend branch: the same loop runs on each loader."""
    cfg = RunConfig.of(mode="accuracy", arch="demo_net", res=32, batch_size=4, epochs=1, progress=False, lr=0.2)
    records = accuracy_mode.run(cpu_context(cfg, tiny), name, "demo_net")
    final = records[-1]["metrics"]
    assert final["samples_seen"] == len(tiny.samples("train"))
    assert final["val_samples"] == len(tiny.samples("val"))
    assert 0 <= final["top1"] <= 1 and final["epochs"] == 1
