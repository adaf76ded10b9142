"""Architecture registry: `create(name, num_classes, res=...)`, `names()`, and what each
architecture builds at a given resolution.

    @register("demo_net", min_res=16)
    def demo_net(num_classes, res=224, **kw): ...

Every entry says which *variant* it builds at a resolution (`variant(name, res)`, recorded in
each result's config) and the smallest resolution it takes (`min_res(name)`; `res_error(name,
res)` gives the one-line reason a resolution is refused, for CLI validation). The torchvision
networks build their ImageNet design from SMALL_BELOW px up and a small-input design below it;
models/small.py says, per architecture, what the small-input design changes and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch.nn as nn

# Below 96 px the ImageNet stems leave the last stage at 2x2 or less (64 px / 32) or make it
# vanish (AlexNet, VGG at 28 px); CIFAR (32 px) and Tiny-ImageNet (64 px) work uses small stems.
SMALL_BELOW = 96


@dataclass(frozen=True)
class Arch:
    build: Callable[..., nn.Module]           # (num_classes, res, small, **kw) -> model
    min_res: int                              # the smallest input side it takes
    small_below: Optional[int] = None         # small-input variant below this side; None: one design
    res_multiple: Callable[[bool], int] = lambda small: 1  # sides must be a multiple of this (ViT patches)


_REGISTRY: dict[str, Arch] = {}


def register(name: str, min_res: int, small_below: Optional[int] = None, res_multiple=None):
    def deco(fn):
        _REGISTRY[name] = Arch(fn, min_res, small_below, res_multiple or (lambda small: 1))
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def _arch(name: str) -> Arch:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(names())}")
    return _REGISTRY[name]


def is_small(name: str, res: int) -> bool:
    """True where `create(name, ..., res)` builds the small-input variant."""
    below = _arch(name).small_below
    return below is not None and res < below


def variant(name: str, res: int) -> str:
    """'small' (small-input stem), 'imagenet' (the published design) or 'native' (one design
    for every size: this project's seed_cnn and demo_net)."""
    if _arch(name).small_below is None:
        return "native"
    return "small" if is_small(name, res) else "imagenet"


def min_res(name: str) -> int:
    """The smallest train/val resolution `name` takes: below it the last stage would see less
    than one pixel of the image (or, for AlexNet, an unpadded pool would get an empty input)."""
    return _arch(name).min_res


def res_error(name: str, res: int) -> Optional[str]:
    """None if `name` builds at `res`, else one line saying why not and what to use."""
    arch = _arch(name)
    if res < arch.min_res:
        return f"{name} takes images of at least {arch.min_res} px, got {res}; use --res {arch.min_res} or more"
    step = arch.res_multiple(is_small(name, res))
    if res % step:
        lower, upper = res - res % step, res - res % step + step
        ok = [r for r in (lower, upper) if r >= arch.min_res and is_small(name, r) == is_small(name, res)]
        return f"{name} at {res} px ({variant(name, res)} variant) needs a multiple of {step} px; use e.g. {' or '.join(map(str, ok or [upper]))}"
    return None


def create(name: str, num_classes: int, res: int = 224, blurpool: bool = False, **kw) -> nn.Module:
    arch = _arch(name)
    problem = res_error(name, res)
    if problem:
        raise ValueError(problem)
    model = arch.build(num_classes=num_classes, res=res, small=is_small(name, res), **kw)
    if blurpool:
        from .zoo import apply_blurpool

        apply_blurpool(model)
    return model


from . import zoo  # noqa: E402,F401  (registers the architectures)
