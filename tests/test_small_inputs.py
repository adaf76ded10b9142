"""Small-input variants: which design each architecture builds at a resolution, what it changes
(only the stem, and AlexNet/VGG's first Linear), the feature-map sizes that gives, the smallest
resolution each takes, and that a few optimiser steps learn at 28 px."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import models

TORCHVISION_CNNS = ["resnet18", "resnet50", "alexnet", "vgg11_bn", "googlenet", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]
# the module whose output is the last feature map (before the global / head pooling)
LAST_STAGE = {"resnet18": "layer4", "resnet50": "layer4", "googlenet": "inception5b"}
# side of that map: small variant at 28 and 64 px, ImageNet design at 224 px (models/small.py's table)
LAST_SIDE = {"resnet18": (4, 8, 7), "resnet50": (4, 8, 7), "googlenet": (4, 8, 7), "mobilenet_v3_small": (4, 8, 7),
             "efficientnet_b0": (4, 8, 7), "convnext_tiny": (3, 8, 7), "alexnet": (2, 7, 6), "vgg11_bn": (1, 4, 7)}
# state-dict entries the small variant may change (shape or presence); everything else is torchvision's
CHANGED = {"resnet18": {"conv1.weight"}, "resnet50": {"conv1.weight"}, "googlenet": {"conv1.conv.weight"},
           "convnext_tiny": {"features.0.0.weight"}, "alexnet": {"features.0.weight", "classifier.1.weight"},
           "vgg11_bn": {"classifier.0.weight"}, "mobilenet_v3_small": set(), "efficientnet_b0": set()}


def last_map(model: nn.Module, name: str, res: int) -> torch.Size:
    seen = {}
    stage = dict(model.named_modules())[LAST_STAGE.get(name, "features")]
    stage.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, res, res))
    return seen["shape"]


@pytest.mark.parametrize("name", TORCHVISION_CNNS)
def test_small_variant_keeps_the_feature_maps_the_field_uses(name):
    sides = [last_map(models.create(name, 10, res=r), name, r)[-1] for r in (28, 64, 224)]
    assert sides == list(LAST_SIDE[name])
    assert [models.variant(name, r) for r in (28, 64, 95, 96, 224)] == ["small"] * 3 + ["imagenet"] * 2


@pytest.mark.parametrize("name", TORCHVISION_CNNS)
def test_small_variant_changes_only_the_stem_and_head(name):
    small, big = models.create(name, 10, res=28).state_dict(), models.create(name, 10, res=224).state_dict()
    assert set(small) == set(big)  # the same layers (an Identity in place of a pool has no state)
    differ = {k for k in small if small[k].shape != big[k].shape}
    assert differ <= CHANGED[name]
    first = next(m for m in models.create(name, 10, res=28).modules() if isinstance(m, nn.Conv2d))
    if name != "vgg11_bn":  # VGG's first conv is 3x3/1 in both designs
        assert (first.kernel_size, first.stride) == ((3, 3), (1, 1))


def test_alexnet_and_vgg_heads_are_sized_to_the_map():
    alex = models.create("alexnet", 10, res=28)  # 256 x 2 x 2 into the first Linear, not 256 x 6 x 6 of repeats
    assert alex.classifier[1].in_features == 256 * 2 * 2
    assert models.create("alexnet", 10, res=224).classifier[1].in_features == 256 * 6 * 6
    assert models.create("vgg11_bn", 10, res=28).classifier[0].in_features == 512
    assert models.create("vgg11_bn", 10, res=64).classifier[0].in_features == 512 * 4 * 4


def test_vit_small_variant_uses_4px_patches():
    small, big = models.create("vit_b_16", 10, res=28), models.create("vit_b_16", 10, res=224)
    assert (small.patch_size, small.seq_length) == (4, 7 * 7 + 1)
    assert (big.patch_size, big.seq_length) == (16, 14 * 14 + 1)
    assert models.res_error("vit_b_16", 30) == "vit_b_16 at 30 px (small variant) needs a multiple of 4 px; use e.g. 28 or 32"
    assert "multiple of 16" in models.res_error("vit_b_16", 100) and models.res_error("vit_b_16", 96) is None


def test_own_networks_are_one_design():
    assert {models.variant(n, r) for n in ("seed_cnn", "demo_net") for r in (28, 224)} == {"native"}


@pytest.mark.parametrize("name", models.names())
def test_min_res_is_the_smallest_that_trains(name):
    low = models.min_res(name)
    model = models.create(name, 3, res=low)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, low, low)), torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match=f"^{name} takes images of at least {low} px, got {low - 1}; use --res {low} or more$"):
        models.create(name, 3, res=low - 1)


def tiny_batch(n: int = 8, res: int = 28):
    """Two classes a network must tell apart by where the bright square is, plus noise."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, res, res, generator=g) * 0.3
    y = torch.arange(n) % 2
    half = res // 2
    for i in range(n):
        rows = slice(0, half) if y[i] == 0 else slice(half, res)
        x[i, :, rows, 4:res - 4] += 1.5
    return x, y


@pytest.mark.parametrize("name", models.names())
def test_a_few_steps_learn_at_28px(name):
    # 8 images and 8 AdamW steps: enough for every variant to fit the batch (ViT-B's 86 M
    # parameters included: 49 tokens at 28 px keep it to seconds), without a per-arch setting.
    torch.manual_seed(0)
    model = models.create(name, 2, res=28).train()
    x, y = tiny_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-2:]) / 2 < 0.5 * losses[0], [round(v, 3) for v in losses]
