"""`--mode eval`: validation images/sec and top-1/5 of given (--init) or fresh weights."""
from __future__ import annotations

import loaders
import models

from ..training.loop import evaluate
from .build import train_state
from .honesty import untrained_warning


def run(ctx, name: str, arch: str) -> list[dict]:
    cfg = ctx.cfg
    res = cfg.data.val_res or cfg.data.res
    state = train_state(ctx, arch, res, init=cfg.checkpoint.init)
    with loaders.build(name, "val", ctx.dataset, ctx.spec(name)) as loader:
        m = evaluate(state.model, loader, ctx.device, ctx.amp, cfg.eval.tta, ctx.comm, max_steps=cfg.measure.steps)
        settings, facts = loader.describe(), loader.facts()
    m["images_per_sec"], m["steps"] = m.pop("eval_images_per_sec"), m.pop("eval_steps")
    m["backend"] = facts
    return [ctx.record("eval", loader=name, arch=arch, metrics=m, config=ctx.resolved(name, arch, backend=settings, model_variant=models.variant(arch, res)),
                       warnings=untrained_warning(cfg.checkpoint.init))]
