"""Transfer learning: start from another run's weights, with a new classifier where the class
count differs, optionally training the classifier only."""
from __future__ import annotations

import torch
import torch.nn as nn

from .checkpoint import unwrap


def init_from(model: nn.Module, path, log=print) -> str | None:
    """Load every weight whose name and shape match; the classifier of another class count is
    left freshly initialised. Returns the head's name."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    src = blob.get("model", blob)
    dst = unwrap(model).state_dict()
    keep = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    skipped = sorted(set(dst) - set(keep))
    unwrap(model).load_state_dict(keep, strict=False)
    if skipped:
        shown = ", ".join(skipped[:4]) + (" ..." if len(skipped) > 4 else "")
        log(f"init: loaded {len(keep)} tensors from {path}; re-initialised {len(skipped)} ({shown})")
    return head_name(unwrap(model))


def head_name(model: nn.Module) -> str | None:
    """The name of the final classifier module (the last Linear; torchvision's `classifier` /
    `heads` containers as a whole)."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    if last and "." in last and last.split(".")[0] in ("classifier", "heads"):
        return last.split(".")[0]
    return last


def freeze_backbone(model: nn.Module, head: str) -> None:
    for name, p in unwrap(model).named_parameters():
        p.requires_grad = name.startswith(head + ".")
