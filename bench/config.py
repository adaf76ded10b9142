"""Run configuration: one typed, frozen dataclass; YAML recipes give defaults, CLI flags override.

The argparse parser is generated from the fields (help text in the field metadata), so there
is one list of options, and booleans are real flags (`--tta` / `--no-tta`), never `type=bool`.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

RECIPES = Path(__file__).parent / "recipes"
MODES = ("loader", "train", "eval", "accuracy", "tune", "ceiling")


def opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class RunConfig:
    # what to run
    mode: str = opt("train", "loader | train | eval | accuracy | tune | ceiling", choices=MODES)
    loader: str = opt("torchvision", "backend(s), comma-separated, or 'all'")
    arch: str = opt("resnet18", "architecture(s), comma-separated (see models.names())")
    data: str = opt("embedded", "'embedded', 'embedded:N' (N train images per class), 'fashion-mnist[:N]' or an ImageFolder path")
    split: str = opt("train", "loader/tune modes: train | val | both", choices=("train", "val", "both"))
    skip_bad: bool = opt(False, "leave bad image files out (listed and counted) instead of stopping")
    recipe: typing.Optional[str] = opt(None, "recipe name in bench/recipes or a YAML file")
    # how long
    epochs: int = opt(1, "epochs (accuracy mode)")
    steps: typing.Optional[int] = opt(None, "measured steps (loader/train/eval); per epoch cap in accuracy mode")
    min_steps: typing.Optional[int] = opt(None, "accuracy mode: at least this many optimiser steps; fewer epochs' worth on a small data set "
                                                "stretches the schedule (epochs, warm-up, LR peak) to reach it (bench/schedule_rule.py); 0: off")
    warmup: int = opt(5, "unmeasured warm-up steps before timing")
    seconds: typing.Optional[float] = opt(None, "stop measuring after this many seconds")
    # data
    batch_size: int = opt(64, "batch size per rank")
    res: int = opt(224, "train resolution")
    val_res: typing.Optional[int] = opt(None, "val/eval resolution (default: res)")
    scale_min: float = opt(0.08, "RandomResizedCrop: smallest crop area fraction, scale = (scale_min, 1)")
    crop_ratio: float = opt(224 / 256, "val center-crop side / resized shorter side")
    min_res: typing.Optional[int] = opt(None, "progressive resizing: first-epoch resolution")
    max_res: typing.Optional[int] = opt(None, "progressive resizing: final resolution")
    start_ramp: typing.Optional[int] = opt(None, "progressive resizing: epoch the ramp starts")
    end_ramp: typing.Optional[int] = opt(None, "progressive resizing: epoch max_res is reached")
    workers: typing.Optional[int] = opt(None, "loader workers/threads (default: all cores for loader mode, half of them when the CPU also trains)")
    prefetch: int = opt(2, "batches prefetched per worker / pipeline depth")
    loader_options: typing.Optional[str] = opt(None, "backend options, key=value comma-separated, values read as YAML (e.g. 'pool=processes,chunk=16'); "
                                                   "each loader gets the keys it reads, a key none reads is an error")
    threads: typing.Optional[int] = opt(None, "compute threads on CPU (default: cores - workers, at least 1)")
    # compute
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    amp: str = opt("auto", "auto | bf16 | fp16 | off", choices=("auto", "bf16", "fp16", "off"))
    channels_last: bool = opt(True, "channels-last memory format for model and inputs")
    compile: bool = opt(False, "torch.compile the model (falls back to eager with a message)")
    blurpool: bool = opt(False, "BlurPool before strided convolutions")
    seed: int = opt(0, "seed for init, order and augmentation")
    # optimisation
    lr: float = opt(0.5, "peak learning rate per 256 images (scaled by batch_size x world / 256)")
    momentum: float = opt(0.9, "SGD momentum")
    nesterov: bool = opt(False, "Nesterov momentum")
    weight_decay: float = opt(5e-5, "weight decay (never on BN and bias)")
    label_smoothing: float = opt(0.1, "label smoothing")
    lr_schedule: str = opt("triangular", "triangular | step | cosine | constant", choices=("triangular", "step", "cosine", "constant"))
    lr_peak_epoch: float = opt(2.0, "triangular: epoch of the peak (linear warm-up before it)")
    warmup_epochs: float = opt(0.0, "step/cosine: linear warm-up epochs")
    step_length: int = opt(30, "step: epochs between decays")
    step_ratio: float = opt(0.1, "step: decay factor")
    # evaluation
    tta: bool = opt(False, "flip test-time augmentation")
    ema: float = opt(0.0, "EMA decay of the weights (0: off); the EMA model is evaluated too")
    # checkpoints and transfer
    checkpoint_dir: typing.Optional[str] = opt(None, "write a checkpoint each epoch here")
    resume: typing.Optional[str] = opt(None, "resume from this checkpoint ('auto': latest in checkpoint_dir)")
    save_checkpoint: typing.Optional[str] = opt(None, "save the final model here")
    init: typing.Optional[str] = opt(None, "initialise from a checkpoint (classifier replaced if classes differ)")
    freeze_backbone: bool = opt(False, "with --init: train the classifier only")
    backbone_lr: float = opt(1.0, "with --init: LR multiplier for the backbone")
    # output
    out: typing.Optional[str] = opt(None, "results file (default results/<machine>.jsonl)")
    json: bool = opt(False, "print the records as JSON lines, nothing else on stdout")
    progress: bool = opt(True, "progress bars")

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)

    def options(self) -> dict:
        """--loader-options 'k=v,k2=v2' as a dict, each value read as YAML (16 -> int,
        false -> bool, none -> None, text stays text)."""
        pairs = [p.strip() for p in (self.loader_options or "").split(",") if p.strip()]
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise SystemExit(f"error: --loader-options takes key=value pairs, got {bad}")
        return {k.strip(): yaml.safe_load(v.strip()) for k, v in (p.split("=", 1) for p in pairs)}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(RunConfig)}


def _base_type(tp):
    tp = typing.get_type_hints(RunConfig)[tp] if isinstance(tp, str) else tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def load_recipe(name: str) -> dict:
    """A recipe: flat `key: value` or FFCV-style sections (`lr: {lr: 0.5, ...}`) flattened."""
    path = Path(name)
    if not path.suffix:
        path = RECIPES / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
        raise SystemExit(f"error: recipe {name!r} not found; known recipes: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    flat: dict = {}
    for k, v in raw.items():
        if isinstance(v, dict):  # a section (no field takes a mapping)
            flat.update(v)
        else:
            flat[k] = v
    unknown = sorted(set(flat) - set(_FIELDS))
    if unknown:
        raise SystemExit(f"error: {path}: unknown keys {unknown}")
    return flat


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="Measure loaders, training and accuracy.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(RunConfig)
    for f in fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        kw = {"default": argparse.SUPPRESS, "help": f.metadata.get("help", "")}
        tp = _base_type(hints[f.name])
        if tp is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, type=tp, choices=f.metadata.get("choices"), **kw)
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return p


def resolve(argv=None) -> tuple[RunConfig, argparse.Namespace]:
    """defaults < recipe < CLI flags."""
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in _FIELDS}
    values = load_recipe(given["recipe"]) if given.get("recipe") else {}
    values.update(given)
    hints = typing.get_type_hints(RunConfig)
    for k, v in list(values.items()):  # YAML may give ints for floats etc.
        tp = _base_type(hints[k])
        if v is not None and tp in (int, float) and not isinstance(v, bool):
            values[k] = tp(v)
    return RunConfig(**values), args
