"""Model and training state for a measurement: seed -> model -> (transfer) -> compile -> DDP ->
optimiser, in one place for every mode."""
from __future__ import annotations

from ..training import transfer
from ..training.compute import CompileFallback, build_model, seed_everything
from ..training.state import TrainState, make_state


def train_state(ctx, arch: str, res: int, init: str | None = None, freeze: bool = False) -> TrainState:
    """The state a mode trains or evaluates: the same init on every rank (seeded; DDP also
    broadcasts rank 0's weights), from `init`'s weights where given."""
    cfg = ctx.cfg
    seed_everything(cfg.compute.seed)
    model = build_model(arch, ctx.dataset.num_classes, res, ctx.device, cfg.compute.channels_last, cfg.model.blurpool)
    head = None
    if init:
        head = transfer.init_from(model, init, ctx.log)
        if freeze:
            transfer.freeze_backbone(model, head)
    if cfg.compute.compile:
        model = CompileFallback(model, ctx.log)
    return make_state(ctx.comm.wrap(model), cfg.optim, ctx.device, ctx.amp, cfg.data.batch_size * ctx.comm.world, head=head)
