"""Checkpoints: everything a resumed run needs to continue to the same result."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / CompileFallback / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None or not isinstance(inner, nn.Module):
            return model
        model = inner


def save(path, state, config: dict, extra: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "epoch": state.epoch,
        "history": state.history,
        # mid-epoch position: the loader resumes at (epoch, batch) with set_epoch(epoch, start_batch=batch)
        "batch": state.batch,
        "partial": state.partial,
        "rng": rng_states(),
        "config": config,
        **(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint


def load(path, state) -> dict:
    """Restore `state` (weights, optimiser, scaler, EMA, epoch, history, RNGs); returns the blob."""
    blob = torch.load(path, map_location=state.device, weights_only=False)
    unwrap(state.model).load_state_dict(blob["model"])
    state.optimizer.load_state_dict(blob["optimizer"])
    state.scaler.load_state_dict(blob["scaler"])
    if state.ema is not None and blob.get("ema") is not None:
        state.ema.load_state_dict(blob["ema"])
    state.epoch = blob["epoch"]
    state.history = list(blob.get("history") or [])
    state.batch = int(blob.get("batch") or 0)
    state.partial = blob.get("partial") or {"losses": [], "seen": 0, "wall_s": 0.0}
    set_rng_states(blob["rng"])
    return blob


def rng_states() -> dict:
    out = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
