"""Architecture registry: `create(name, num_classes, **kw)`, `names()`.

    @register("demo_net")
    def demo_net(num_classes, res=224, **kw): ...
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, res: int = 224, blurpool: bool = False, **kw) -> nn.Module:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(names())}")
    model = _REGISTRY[name](num_classes=num_classes, res=res, **kw)
    if blurpool:
        from .zoo import apply_blurpool

        apply_blurpool(model)
    return model


from . import zoo  # noqa: E402,F401  (registers the architectures)
