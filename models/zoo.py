"""The architectures: torchvision's classics and two small CPU-sized networks.

Every entry is built from scratch (no downloaded weights: this suite measures training) and
trains at 28, 64 and 224 px. The torchvision networks build their published (ImageNet) design
from models.SMALL_BELOW (96) px up and the small-input design of models/small.py below it;
seed_cnn and demo_net are one design for every size.

| arch | min_res | why that minimum |
|---|---:|---|
| resnet18, resnet50, googlenet, mobilenet_v3_small, efficientnet_b0, convnext_tiny | 8 | small variant's total stride 8 |
| alexnet | 15 | three unpadded 3x3/2 pools: 15 -> 7 -> 3 -> 1 |
| vgg11_bn | 16 | four 2x2 pools in the small variant |
| vit_b_16 | 4 | one 4x4 patch; sides a multiple of 4 below 96 px, of 16 from 96 px |
| seed_cnn | 8 | three 2x2 pools before its flatten |
| demo_net | 16 | four stride-2 stages |
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm

from . import SMALL_PATCH
from . import small as S

BUILDERS: dict = {}  # name -> builder; the facts (min_res, variants) are in models/__init__.py


def builder(name: str):
    def deco(fn):
        BUILDERS[name] = fn
        return fn

    return deco


# name: (torchvision keyword arguments, small-input conversion)
_TORCHVISION = {
    "resnet18": ({}, S.resnet),
    "resnet50": ({}, S.resnet),
    "alexnet": ({}, S.alexnet),
    "vgg11_bn": ({}, S.vgg11_bn),
    "googlenet": ({"aux_logits": False, "init_weights": True}, S.googlenet),
    "mobilenet_v3_small": ({}, S.mobilenet_v3_small),
    "efficientnet_b0": ({}, S.efficientnet_b0),
    "convnext_tiny": ({}, S.convnext_tiny),
}


def _torchvision(name, extra, to_small):
    def build(num_classes, res=224, small=False, **kw):
        model = getattr(tvm, name)(weights=None, num_classes=num_classes, **{**extra, **kw})
        return to_small(model, res) if small else model

    return build


for _name, (_extra, _to_small) in _TORCHVISION.items():
    builder(_name)(_torchvision(_name, _extra, _to_small))


@builder("vit_b_16")
def vit_b_16(num_classes, res=224, small=False, **kw):
    # ViT's position embedding is sized for one resolution: build it for the one asked for.
    # The small variant is ViT-B/16's encoder (12 layers, 12 heads, 768 wide) on 4x4 patches.
    patch = SMALL_PATCH if small else 16
    return tvm.VisionTransformer(image_size=res, patch_size=patch, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
                                 num_classes=num_classes, **kw)


class SeedCNN(nn.Module):
    """The seed document's small CNN, done right: no softmax before the loss (CrossEntropyLoss
    takes logits), and the flatten size follows the input resolution instead of a constant."""

    def __init__(self, num_classes: int, res: int = 64, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = res // 8
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(4 * width * side * side, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@builder("seed_cnn")
def seed_cnn(num_classes, res=64, small=False, **kw):
    return SeedCNN(num_classes, res=res, **kw)


class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)), inplace=True)


class DemoNet(nn.Module):
    """A CPU-sized residual network for the demo: ~0.7 M parameters, global pooling (any res)."""

    def __init__(self, num_classes: int, widths=(32, 64, 128, 192)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@builder("demo_net")
def demo_net(num_classes, res=64, small=False, **kw):
    return DemoNet(num_classes, **kw)


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019), as FFCV's ResNet recipes use: a fixed 3x3
    binomial blur before a strided convolution."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).clone())
        self.channels = channels

    def forward(self, x):
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=self.channels)


def apply_blurpool(model: nn.Module) -> int:
    """Put a BlurPool before every strided conv with >= 16 input channels (FFCV's rule).
    Returns how many were inserted."""
    count = 0
    for name, child in model.named_children():
        if isinstance(child, nn.Conv2d) and max(child.stride) > 1 and child.in_channels >= 16:
            setattr(model, name, nn.Sequential(BlurPool(child.in_channels), child))
            count += 1
        else:
            count += apply_blurpool(child)
    return count
