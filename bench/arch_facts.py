"""What an accuracy record says about the network it trained: the variant models.create built
at the train resolution, how it was initialised, and its size."""
from __future__ import annotations

import models

from . import train as T


def transfer(cfg) -> str:
    """'scratch' (fresh weights), 'frozen' (--init, only the classifier trains) or 'full'
    (--init, every layer trains): the three arms of a transfer-learning comparison."""
    if not cfg.init:
        return "scratch"
    return "frozen" if cfg.freeze_backbone else "full"


def config_extras(cfg, arch: str) -> dict:
    """Keys for the record's config: model_variant ('small' | 'imagenet' | 'native') and transfer."""
    return {"model_variant": models.variant(arch, T.res_at(0, cfg)), "transfer": transfer(cfg)}


def params(model) -> dict:
    """Parameter counts of the plain model: all of them and the ones that train."""
    plain = T.unwrap(model)
    return {"params": sum(p.numel() for p in plain.parameters()),
            "trainable_params": sum(p.numel() for p in plain.parameters() if p.requires_grad)}
