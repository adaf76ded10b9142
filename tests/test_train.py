"""The training core: it learns, AMP and channels_last are in effect, resume is exact."""
from __future__ import annotations

import pytest
import torch

import loaders
from bench import train as T
from bench.config import RunConfig
from bench.modes import Context


@pytest.fixture(scope="module")
def embedded():
    return loaders.resolve("embedded", progress=False)


def context(cfg, dataset, workers=1):
    device = torch.device("cpu")
    return Context(cfg, dataset, device, T.resolve_amp(cfg.amp, device), workers=workers, threads=torch.get_num_threads(), log=lambda m: None)


def test_short_run_learns_well_above_chance(embedded):
    from bench.fit import fit

    cfg = RunConfig(mode="accuracy", loader="torchvision", arch="demo_net", res=64, epochs=6, batch_size=64, lr=0.8, progress=False)
    records = fit(context(cfg, embedded), "torchvision", "demo_net")
    final = records[-1]
    assert [r["kind"] for r in records] == ["epoch"] * 6 + ["accuracy"]
    assert final["metrics"]["top1"] >= 0.35, final["metrics"]  # chance is 0.10
    assert records[0]["metrics"]["samples_seen"] == len(embedded.samples("train"))
    assert final["metrics"]["val_samples"] == len(embedded.samples("val"))


@pytest.mark.parametrize("name", ["torchvision", "synthetic"])
def test_amp_and_channels_last_in_effect(name, tiny):
    spec = loaders.LoaderSpec(batch_size=4, res=32, workers=0, dtype="bfloat16")
    model = T.build_model("resnet18", tiny.num_classes, 32, torch.device("cpu"), channels_last=True)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype, cl=o.is_contiguous(memory_format=torch.channels_last)))
    state = T.make_state(model, RunConfig(), torch.device("cpu"), torch.bfloat16)
    with loaders.build(name, "train", tiny, spec) as loader:
        images, labels = next(iter(loader))
        assert images.dtype == torch.bfloat16 and images.is_contiguous(memory_format=torch.channels_last)
        loss = T.train_step(state, images, labels, 0.01)
    assert seen == {"dtype": torch.bfloat16, "cl": True}
    assert torch.isfinite(loss)
    off = T.make_state(model, RunConfig(), torch.device("cpu"), None)
    T.train_step(off, images.float(), labels, 0.01)
    assert seen["dtype"] == torch.float32


def test_no_weight_decay_on_bn_and_bias():
    model = T.build_model("resnet18", 10, 32, torch.device("cpu"))
    groups = T.param_groups(model, 5e-5)
    for g in groups:
        for p in g["params"]:
            assert (g["weight_decay"] == 0) == (p.ndim <= 1)


def test_lr_schedules():
    cfg = RunConfig(epochs=10, lr_peak_epoch=2)
    assert T.lr_factor(2, cfg) == pytest.approx(1.0) and T.lr_factor(10, cfg) == pytest.approx(0.0)
    assert T.lr_factor(1, cfg) == pytest.approx(0.5, abs=1e-3)
    step = cfg.replace(lr_schedule="step", step_length=3, step_ratio=0.1, warmup_epochs=1)
    assert T.lr_factor(0.5, step) == 0.5 and T.lr_factor(3.5, step) == pytest.approx(0.1)
    cos = cfg.replace(lr_schedule="cosine")
    assert T.lr_factor(0, cos) == 1.0 and T.lr_factor(5, cos) == pytest.approx(0.5) and T.lr_factor(10, cos) == pytest.approx(0)


def test_progressive_resizing_schedule():
    cfg = RunConfig(epochs=16, min_res=160, max_res=192, start_ramp=11, end_ramp=13)
    assert [T.res_at(e, cfg) for e in (0, 11, 12, 13, 15)] == [160, 160, 192, 192, 192]
    assert T.res_at(3, RunConfig(res=96)) == 96


def test_resume_reproduces_uninterrupted_run(tiny, tmp_path, monkeypatch):
    from bench.fit import fit

    base = RunConfig(mode="accuracy", arch="demo_net", res=32, batch_size=4, epochs=2, amp="off", progress=False, lr=0.2)
    full = fit(context(base.replace(checkpoint_dir=str(tmp_path / "a")), tiny), "torchvision", "demo_net")

    real_save = T.save_checkpoint

    def save_then_die(*a, **kw):  # the process is killed right after the first checkpoint
        real_save(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(context(base.replace(checkpoint_dir=str(tmp_path / "b")), tiny), "torchvision", "demo_net")
    monkeypatch.setattr(T, "save_checkpoint", real_save)
    resumed = fit(context(base.replace(checkpoint_dir=str(tmp_path / "b"), resume="auto"), tiny), "torchvision", "demo_net")
    assert [r["metrics"]["epoch"] for r in resumed if r["kind"] == "epoch"] == [2]
    a = torch.load(tmp_path / "a" / "demo_net-torchvision-last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "demo_net-torchvision-last.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert full[-1]["metrics"]["top1"] == resumed[-1]["metrics"]["top1"]
    assert full[-1]["metrics"]["wall_s"] > 0 and resumed[-1]["metrics"]["epochs"] == 2


@pytest.mark.parametrize("name", [n for n in loaders.names(runnable_here=True) if n != "synthetic"])
def test_one_epoch_through_the_core_on_every_backend(name, tiny):
    """The trainer has no per-backend branch: the same fit() runs on each loader."""
    from bench.fit import fit

    cfg = RunConfig(mode="accuracy", arch="demo_net", res=32, batch_size=4, epochs=1, progress=False, lr=0.2)
    records = fit(context(cfg, tiny), name, "demo_net")
    final = records[-1]["metrics"]
    assert final["samples_seen"] == len(tiny.samples("train"))
    assert final["val_samples"] == len(tiny.samples("val"))
    assert 0 <= final["top1"] <= 1 and final["epochs"] == 1
