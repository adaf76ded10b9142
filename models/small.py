"""Small-input variants of the torchvision networks (built below models.SMALL_BELOW px).

An ImageNet stem divides the image by 4 before the first stage (ResNet: 7x7/2 conv + 3x3/2
pool; AlexNet: 11x11/4 conv); on a 28 px image that leaves 7 px for the first stage and 1 px
(or nothing) for the last. The field's answer (CIFAR ResNets, He et al. 2016 sec. 4.2; the
common CIFAR ports of AlexNet, VGG, GoogLeNet and MobileNet) is a stem that keeps the full
resolution: a 3x3 stride-1 first convolution and fewer early pools. Each function below takes
torchvision's model and changes only that; every later layer, width and initialisation is
torchvision's. With the stride-4 stem gone, the small variant at R px gives every stage the
feature-map size the ImageNet design has at 4R px (VGG: 2R, see vgg).

| arch               | small-input variant (below 96 px)                                  | total stride | at 28 px, last map |
|--------------------|--------------------------------------------------------------------|-------------:|-------------------:|
| resnet18, resnet50 | conv1 7x7/2 -> 3x3/1, maxpool removed                              | 32 -> 8      | 4x4   |
| googlenet          | conv1 7x7/2 -> 3x3/1, maxpool1 removed                             | 32 -> 8      | 4x4   |
| mobilenet_v3_small | stem conv 3x3/2 -> 3x3/1, first block's depthwise stride 2 -> 1    | 32 -> 8      | 4x4   |
| efficientnet_b0    | stem conv 3x3/2 -> 3x3/1, stage 2's depthwise stride 2 -> 1        | 32 -> 8      | 4x4   |
| convnext_tiny      | stem 4x4/4 patchify -> 3x3/1 conv                                  | 32 -> 8      | 3x3   |
| alexnet            | conv1 11x11/4 -> 3x3/1; head sized to the map (<= 6x6)             | 32 -> 8      | 2x2   |
| vgg11_bn           | first max-pool removed; head sized to the map (<= 7x7)             | 32 -> 16     | 1x1   |
| vit_b_16           | patches 16x16 -> 4x4 (side a multiple of 4)                        | 16 -> 4      | 7x7 tokens |
"""
from __future__ import annotations

import torch.nn as nn



def _conv3x3_stride1(old: nn.Conv2d, init) -> nn.Conv2d:
    """A 3x3 stride-1 'same' convolution with old's channels and bias, initialised by `init`."""
    new = nn.Conv2d(old.in_channels, old.out_channels, 3, 1, 1, bias=old.bias is not None)
    init(new)
    return new


def _kaiming_fan_out(conv: nn.Conv2d) -> None:  # torchvision's ResNet / MobileNet / EfficientNet init
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _trunc_normal(std: float):  # torchvision's GoogLeNet (0.01) and ConvNeXt (0.02) init
    def init(conv: nn.Conv2d) -> None:
        nn.init.trunc_normal_(conv.weight, mean=0.0, std=std, a=-2, b=2)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)

    return init


def _pytorch_default(conv: nn.Conv2d) -> None:  # AlexNet keeps PyTorch's default init
    pass


def _pool_side(side: int, kernel: int, stride: int, times: int) -> int:
    for _ in range(times):
        side = (side - kernel) // stride + 1
    return side


def resnet(model, res: int):
    model.conv1 = _conv3x3_stride1(model.conv1, _kaiming_fan_out)
    model.maxpool = nn.Identity()
    return model


def googlenet(model, res: int):
    # maxpool2 stays: without it inception3a (256 channels) would run at the full 28x28, the
    # cost of the ImageNet network at 224 px; with it each stage sees the 4R-px map size.
    model.conv1.conv = _conv3x3_stride1(model.conv1.conv, _trunc_normal(0.01))
    model.maxpool1 = nn.Identity()
    return model


def _unstride(conv: nn.Conv2d) -> None:
    # A stride-2 'same' conv (padding (k-1)/2) with stride 1 keeps its weights and its output
    # side = input side; its block keeps no residual it did not have before.
    conv.stride = (1, 1)


def mobilenet_v3_small(model, res: int):
    _unstride(model.features[0][0])          # stem 3x3/2
    _unstride(model.features[1].block[0][0])  # first inverted residual: depthwise 3x3/2
    return model


def efficientnet_b0(model, res: int):
    _unstride(model.features[0][0])                 # stem 3x3/2
    _unstride(model.features[2][0].block[1][0])     # stage 2 (16 -> 24 channels): depthwise 3x3/2
    return model


def convnext_tiny(model, res: int):
    # The 4x4/4 patchify stem is ConvNeXt's stride-4 stem; LayerNorm after it stays.
    model.features[0][0] = _conv3x3_stride1(model.features[0][0], _trunc_normal(0.02))
    return model


def _sized_head(model, channels: int, side: int, cap: int, init) -> None:
    """Average-pool to min(side, cap) (torchvision pools to cap x cap, which on a smaller map
    only repeats pixels into a bigger first Linear) and size the first Linear to it."""
    k = max(1, min(side, cap))
    model.avgpool = nn.AdaptiveAvgPool2d((k, k))
    first = next(i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear))
    old = model.classifier[first]
    model.classifier[first] = nn.Linear(channels * k * k, old.out_features)
    init(model.classifier[first])


def _vgg_linear_init(linear: nn.Linear) -> None:  # torchvision's VGG init for Linear layers
    nn.init.normal_(linear.weight, 0, 0.01)
    nn.init.zeros_(linear.bias)


def alexnet(model, res: int):
    # Its three unpadded 3x3/2 pools stay (28 -> 13 -> 6 -> 2): only the stride-4 stem goes.
    model.features[0] = _conv3x3_stride1(model.features[0], _pytorch_default)
    _sized_head(model, 256, _pool_side(res, 3, 2, 3), 6, lambda linear: None)
    return model


def vgg11_bn(model, res: int):
    # VGG's first conv is already 3x3/1; its five 2x2 pools take 32 px (CIFAR) to 1x1 and 28 px
    # to nothing. Removing the first (the "fewer early pools") gives 28 -> 1x1, 64 -> 4x4, as
    # CIFAR-VGG at 32 px. Dropping two (stride 8) would cost 4x the FLOPs at every size.
    first_pool = next(i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d))
    model.features[first_pool] = nn.Identity()  # an Identity keeps the later layers' names
    _sized_head(model, 512, res // 16, 7, _vgg_linear_init)
    return model



