"""Every registered architecture builds and takes a training step at 28, 64 and 224 px."""
from __future__ import annotations

import pytest
import torch

import models

REQUIRED = ["resnet18", "resnet50", "alexnet", "vgg11_bn", "googlenet", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16", "seed_cnn", "demo_net"]


def test_registry_has_required_architectures():
    assert set(REQUIRED) <= set(models.names())


@pytest.mark.parametrize("res", [28, 64, 224])
@pytest.mark.parametrize("arch", models.names())
def test_trains_one_step(arch, res):
    torch.manual_seed(0)
    model = models.create(arch, num_classes=7, res=res).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, res, res).to(memory_format=torch.channels_last)
    y = torch.tensor([1, 5])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert model(x).shape == (2, 7)


def test_seed_cnn_has_no_softmax_and_sizes_flatten_from_res():
    m64, m96 = models.create("seed_cnn", 10, res=64), models.create("seed_cnn", 10, res=96)
    assert not any(isinstance(m, torch.nn.Softmax) for m in m64.modules())
    assert m64.classifier[2].in_features == 128 * 8 * 8 and m96.classifier[2].in_features == 128 * 12 * 12
    out = m64(torch.randn(3, 3, 64, 64))
    assert not torch.allclose(out.exp().sum(1), torch.ones(3))  # logits, not probabilities


def test_blurpool_inserts_before_strided_convs():
    plain, blurred = models.create("resnet18", 10), models.create("resnet18", 10, blurpool=True)
    from models.zoo import BlurPool

    assert not any(isinstance(m, BlurPool) for m in plain.modules())
    assert sum(isinstance(m, BlurPool) for m in blurred.modules()) >= 3
    assert blurred(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_unknown_architecture_message():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        models.create("nope", 10)
