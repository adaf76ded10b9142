"""Every flag value checked at the command line, before anything runs: one line that says what
is allowed (bench.run exits 2 with it, and nothing is recorded). Imports nothing heavy: the
loader registry and the architecture catalogue are names, not code."""
from __future__ import annotations

import difflib
import os
import re

import loaders

from .config import RunConfig

POSITIVE = ("batch_size", "epochs", "res", "prefetch")  # must be >= 1 when given
POSITIVE_OR_NONE = ("steps", "val_res", "threads", "min_res", "max_res")
NON_NEGATIVE = ("warmup", "workers")
DATA = re.compile(r"^(embedded|fashion-mnist)(?::(.*))?$")


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _numbers(flat: dict) -> str | None:
    for k in POSITIVE + POSITIVE_OR_NONE:
        v = flat[k]
        if v is not None and v < 1:
            return f"--{k.replace('_', '-')} {v}: must be a positive integer"
    for k in NON_NEGATIVE:
        if flat[k] is not None and flat[k] < 0:
            return f"--{k.replace('_', '-')} {flat[k]}: must be 0 or more"
    if flat["seconds"] is not None and flat["seconds"] <= 0:
        return f"--seconds {flat['seconds']}: must be more than 0"
    if not 0 < flat["scale_min"] <= 1:
        return f"--scale-min {flat['scale_min']}: must be in (0, 1]"
    if not 0 < flat["crop_ratio"] <= 1:
        return f"--crop-ratio {flat['crop_ratio']}: must be in (0, 1]"
    if flat["lr"] <= 0:
        return f"--lr {flat['lr']}: must be more than 0"
    return None


def _data(value: str) -> str | None:
    m = DATA.match(value)
    if m:
        n = m.group(2)
        if n is not None and not (n.isdigit() and int(n) >= 1):
            return f"--data {value}: after '{m.group(1)}:' comes a positive number of train images per class (e.g. {m.group(1)}:100)"
        return None
    if os.path.isdir(value):
        return None
    hint = suggest(value.split(":")[0], ("embedded", "fashion-mnist"))
    return f"--data {value}: not a folder; give 'embedded[:N]', 'fashion-mnist[:N]' or a folder holding train/ and val/{hint}"


def _names(flag: str, given: tuple, known: list[str], extra: str = "") -> str | None:
    for name in given:
        if name != "all" and name not in known:
            return f"--{flag} {name}: not {'an' if flag[0] in 'aeiou' else 'a'} {flag}; choose from {', '.join(known)} or all{suggest(name, known)}{extra}"
    if "all" in given and len(given) > 1:
        return f"--{flag} {','.join(given)}: 'all' stands alone"
    return None


def _files(cfg: RunConfig) -> str | None:
    for flag, path in (("init", cfg.checkpoint.init), ("resume", cfg.checkpoint.resume)):
        if path and not (flag == "resume" and path == "auto") and not os.path.isfile(path):
            return f"--{flag} {path}: no such file" + ("; or use --resume auto with --checkpoint-dir" if flag == "resume" else "")
    if cfg.checkpoint.resume == "auto" and not cfg.checkpoint.checkpoint_dir:
        return "--resume auto looks in --checkpoint-dir: give it too (e.g. --checkpoint-dir checkpoints)"
    if cfg.checkpoint.freeze_backbone and not cfg.checkpoint.init:
        return "--freeze-backbone trains the classifier of --init's weights: give --init too"
    if cfg.checkpoint.transfer_baseline and cfg.checkpoint.init:
        return "--transfer-baseline is the from-scratch arm: drop --init (or drop --transfer-baseline for the full arm)"
    return None


def _resolution(cfg: RunConfig, archs: list[str]) -> str | None:
    """Each selected architecture must take the train and val resolutions (models.min_res)."""
    import models

    for arch in archs:
        for flag, res in (("res", cfg.data.res), ("val-res", cfg.data.val_res), ("min-res", cfg.schedule.min_res),
                          ("max-res", cfg.schedule.max_res)):
            why = res is not None and models.res_error(arch, res)
            if why:
                return f"--{flag} {res}: {why}"
    return None


def problem(cfg: RunConfig) -> str | None:
    """The first thing wrong with `cfg` (one line), or None."""
    from bench.harness.modes import MODES

    import models

    flat = cfg.flat()
    mode = MODES[cfg.run.mode]
    archs = models.names()
    for check in (lambda: _numbers(flat), lambda: _data(cfg.data.data),
                  lambda: _names("loader", cfg.run.loader, loaders.names()) if mode.per_loader else None,
                  lambda: _names("arch", cfg.model.arch, archs) if mode.per_arch else None,
                  lambda: _resolution(cfg, archs if cfg.model.arch == ("all",) else list(cfg.model.arch)) if mode.per_arch else None,
                  lambda: _files(cfg)):
        why = check()
        if why:
            return why
    if mode.per_loader:
        selected = loaders.names() if cfg.run.loader == ("all",) else list(cfg.run.loader)
        bad = loaders.option_problems(selected, cfg.data.loader_options)
        if bad:
            return bad[0]
    return None
