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
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # importing torch here would cost the CLI its fast --help and flag checks
    import torch.nn as nn

# Below 96 px the ImageNet stems leave the last stage at 2x2 or less (64 px / 32) or make it
# vanish (AlexNet, VGG at 28 px); CIFAR (32 px) and Tiny-ImageNet (64 px) work uses small stems.
SMALL_BELOW = 96
SMALL_PATCH = 4  # ViT's small-input patch: 28 px -> 7x7 tokens, 64 px -> 16x16 (CIFAR ViTs use 4 at 32 px)


@dataclass(frozen=True)
class Arch:
    build: Optional[Callable[..., "nn.Module"]]  # (num_classes, res, small, **kw) -> model; None: models/zoo.py's, imported on create
    min_res: int                              # the smallest input side it takes
    small_below: Optional[int] = None         # small-input variant below this side; None: one design
    res_multiple: Callable[[bool], int] = lambda small: 1  # sides must be a multiple of this (ViT patches)


_REGISTRY: dict[str, Arch] = {}


def register(name: str, min_res: int, small_below: Optional[int] = None, res_multiple=None, build=None):
    """Declare an architecture (its facts: what --help lists and the CLI checks, without torch);
    as a decorator, its builder too."""
    def deco(fn):
        _REGISTRY[name] = Arch(fn, min_res, small_below, res_multiple or (lambda small: 1))
        return fn

    deco(build)
    return deco


# The catalogue: min_res per architecture (models/zoo.py says why each), the builders in zoo.py.
for _name, _min in (("resnet18", 8), ("resnet50", 8), ("alexnet", 15), ("vgg11_bn", 16), ("googlenet", 8),
                    ("mobilenet_v3_small", 8), ("efficientnet_b0", 8), ("convnext_tiny", 8)):
    register(_name, min_res=_min, small_below=SMALL_BELOW)
register("vit_b_16", min_res=SMALL_PATCH, small_below=SMALL_BELOW, res_multiple=lambda small: SMALL_PATCH if small else 16)
register("seed_cnn", min_res=8)
register("demo_net", min_res=16)


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


def create(name: str, num_classes: int, res: int = 224, blurpool: bool = False, **kw) -> "nn.Module":
    arch = _arch(name)
    problem = res_error(name, res)
    if problem:
        raise ValueError(problem)
    if arch.build is None:
        from .zoo import BUILDERS

        build = BUILDERS[name]
    else:
        build = arch.build
    model = build(num_classes=num_classes, res=res, small=is_small(name, res), **kw)
    if blurpool:
        from .zoo import apply_blurpool

        apply_blurpool(model)
    return model

