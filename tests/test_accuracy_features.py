"""The accuracy features change what they should: flip-TTA, EMA, BlurPool, progressive resizing
(on every backend), and fine-tuning from a checkpoint trained on another class count."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import loaders
from bench.cli.config import RunConfig
from bench.cli.parser import resolve
from bench.harness import accuracy_mode
from bench.training import loop
from bench.training.comm import Single
from bench.training.compute import build_model
from bench.training.loop import evaluate, train_step
from bench.training.state import make_state
from models.zoo import BlurPool
from tests.helpers import cpu_context, make_imagefolder

CPU = torch.device("cpu")


def fit(ctx, name, arch):
    return accuracy_mode.run(ctx, name, arch)


def context(cfg, dataset):
    return cpu_context(cfg, dataset, workers=0)


def tiny_cfg(**kw) -> RunConfig:
    base = dict(mode="accuracy", arch="demo_net", res=32, batch_size=4, epochs=1, amp="off", progress=False, lr=0.2)
    return RunConfig.of(**{**base, **kw})


# -- flip-TTA ---------------------------------------------------------------------------------
def test_tta_uses_the_sum_of_image_and_mirror_logits(tiny):
    torch.manual_seed(0)
    model = build_model("demo_net", tiny.num_classes, 32, CPU).eval()
    spec = loaders.LoaderSpec(batch_size=4, res=32, val_res=32, workers=0)
    with loaders.build("torchvision", "val", tiny, spec) as val:
        plain = evaluate(model, val, CPU, None, False, Single())
        tta = evaluate(model, val, CPU, None, True, Single())
        expected, n = 0.0, 0
        with torch.no_grad():
            for x, y in val:
                logits = model(x) + model(torch.flip(x, dims=[3]))
                expected += nn.functional.cross_entropy(logits, y, reduction="sum").item()
                n += len(y)
    assert plain["loss"] != tta["loss"]  # the logits used differ
    assert tta["loss"] == pytest.approx(expected / n, abs=1e-3)
    assert tta["val_samples"] == plain["val_samples"] == n == len(tiny.samples("val"))


# -- EMA ----------------------------------------------------------------------------------------
def test_ema_weights_follow_the_ema_rule(tiny):
    """AveragedModel's rule: the first update copies the live weights, each later one makes
    them decay * EMA + (1 - decay) * live. So the EMA is neither the initial weights (an EMA
    that never updates) nor the live ones (an EMA that only copies)."""
    torch.manual_seed(0)
    model = build_model("demo_net", tiny.num_classes, 32, CPU)
    state = make_state(model, tiny_cfg(ema=0.5).optim, CPU, None, 4)
    x, y = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last), torch.tensor([0, 1, 2, 0])
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    expected = None
    for _ in range(3):
        train_step(state, x, y, 0.1)
        live = {k: v.detach().clone() for k, v in state.model.named_parameters()}
        expected = live if expected is None else {k: 0.5 * expected[k] + 0.5 * live[k] for k in live}
    ema = dict(state.ema.module.named_parameters())
    moved = [k for k in live if not torch.allclose(live[k], initial[k])]
    assert moved, "training moved the weights"
    for k in live:
        torch.testing.assert_close(ema[k].detach(), expected[k], rtol=1e-5, atol=1e-6)
    assert all(not torch.allclose(ema[k], live[k]) and not torch.allclose(ema[k], initial[k]) for k in moved)


def test_fit_evaluates_the_ema_model_too(tiny, monkeypatch):
    evaluated = []
    real = loop.evaluate
    def spy(model, *a, **kw):  # each call's figures marked, so that a record shows which model they came from
        evaluated.append(model)
        n = len(evaluated)
        return {**real(model, *a, **kw), "top1": n / 10, "top5": n / 10 + 0.05}

    monkeypatch.setattr(loop, "evaluate", spy)
    records = fit(context(tiny_cfg(ema=0.9, epochs=2), tiny), "torchvision", "demo_net")
    live, ema = evaluated[0], evaluated[1]
    assert len(evaluated) == 4 and live is not ema, "the live model and the EMA model, each epoch"
    assert evaluated[2] is live and evaluated[3] is ema
    pairs = {(r["metrics"]["top1"], r["metrics"]["top1_ema"], r["metrics"]["top5_ema"]) for r in records}
    assert pairs <= {(0.1, 0.2, 0.25), (0.3, 0.4, 0.45)} and (0.3, 0.4, 0.45) in pairs, "EMA figures from the EMA model's pass"
    assert records[-1]["kind"] == "accuracy"


# -- BlurPool, through the config path ----------------------------------------------------------
def test_blurpool_from_recipe_and_flag_changes_the_model():
    on, _ = resolve(["--recipe", "rn18-16ep"])
    off, _ = resolve(["--recipe", "rn18-16ep", "--no-blurpool"])
    assert on.model.blurpool and not off.model.blurpool
    outs = {}
    for cfg in (on, off):
        torch.manual_seed(0)
        model = build_model(cfg.model.arch[0], 10, 64, CPU, blurpool=cfg.model.blurpool).eval()
        outs[cfg.model.blurpool] = (sum(isinstance(m, BlurPool) for m in model.modules()), model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))))
    assert outs[True][0] >= 3 and outs[False][0] == 0
    assert not torch.allclose(outs[True][1], outs[False][1])
    assert resolve(["--arch", "demo_net", "--blurpool"])[0].model.blurpool


# -- progressive resizing in fit, on every backend -----------------------------------------------
@pytest.mark.parametrize("name", ["torchvision", "synthetic", "dali", "ffcv"])
def test_progressive_resizing_changes_train_resolution(name, tiny, monkeypatch):
    seen: dict[int, set] = {}
    real_step = loop.train_step

    def spy(state, images, labels, lr):
        seen.setdefault(state.epoch, set()).add(tuple(images.shape))
        return real_step(state, images, labels, lr)

    monkeypatch.setattr(loop, "train_step", spy)
    cfg = tiny_cfg(epochs=3, min_res=32, max_res=64, start_ramp=1, end_ramp=2, steps=2)
    records = fit(context(cfg, tiny), name, "demo_net")
    assert [r["metrics"]["res"] for r in records if r["kind"] == "epoch"] == [32, 32, 64]
    sides = {e: {s[2:] for s in shapes} for e, shapes in seen.items()}
    assert sides == {0: {(32, 32)}, 1: {(32, 32)}, 2: {(64, 64)}}
    assert all(s[0] == 4 for shapes in seen.values() for s in shapes)  # the batch size is kept


# -- transfer learning ----------------------------------------------------------------------------
def _params(path):
    return torch.load(path, weights_only=False)["model"]


def test_fine_tune_on_another_class_count(tiny, tmp_path):
    src = tmp_path / "src.pt"
    fit(context(tiny_cfg(save_checkpoint=str(src)), tiny), "torchvision", "demo_net")
    blob = torch.load(src, weights_only=False)
    assert blob["arch"] == "demo_net" and blob["classes"] == tiny.classes and blob["model"]["fc.weight"].shape[0] == 3

    from loaders.datasets import scan

    two = scan(make_imagefolder(tmp_path / "two", train=(4, 4), val=(2, 2), classes=["cat", "dog"]), progress=False)
    out = {}
    for frozen in (True, False):
        dst = tmp_path / f"dst-{frozen}.pt"
        cfg = tiny_cfg(init=str(src), freeze_backbone=frozen, save_checkpoint=str(dst), weight_decay=0.0)
        records = fit(context(cfg, two), "torchvision", "demo_net")
        assert records[-1]["metrics"]["val_samples"] == 4
        out[frozen] = _params(dst)
    before = blob["model"]
    model = build_model("demo_net", 2, 32, CPU)
    backbone = [k for k, _ in model.named_parameters() if not k.startswith("fc.")]
    assert backbone and all(out[True][k].shape == before[k].shape for k in backbone)
    assert out[True]["fc.weight"].shape == (2, before["fc.weight"].shape[1])
    # frozen: every backbone weight is the pre-trained one, the new head learnt
    for k in backbone:
        torch.testing.assert_close(out[True][k], before[k], rtol=0, atol=0)
    # not frozen: the backbone moved away from the pre-trained weights
    assert any(not torch.allclose(out[False][k], before[k]) for k in backbone)


# -- real small images: Fashion-MNIST written once as an ImageFolder ------------------------------
def _write_idx(path, array):
    import gzip
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def test_small_images_prepare_writes_an_imagefolder_once(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from loaders.datasets import DataError, scan
    from loaders.datasets.small_images import CLASSES, FILES, prepare

    src = tmp_path / "idx"
    src.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("val", 10)):
        images_file, labels_file = FILES[split]
        _write_idx(src / images_file, rng.integers(0, 256, (n, 28, 28)))
        _write_idx(src / labels_file, np.arange(n) % 10)
    monkeypatch.setenv("LOADERBENCH_FASHION_MNIST", str(src))
    root = prepare("fashion-mnist:2", tmp_path / "cache")
    ds = scan(root, progress=False)
    assert ds.classes == CLASSES["fashion-mnist"] and len(ds.samples("train")) == 20 and len(ds.samples("val")) == 10
    with Image.open(ds.samples("train")[0][0]) as img:
        assert img.size == (28, 28) and img.mode == "L"
    stamp = (root / "train").stat().st_mtime_ns
    assert prepare("fashion-mnist:2", tmp_path / "cache") == root and (root / "train").stat().st_mtime_ns == stamp
    monkeypatch.setenv("LOADERBENCH_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        prepare("fashion-mnist", tmp_path / "cache")
