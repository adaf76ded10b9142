"""Run configuration: typed, frozen sections that mirror the recipes' YAML sections.

Each function receives the section it reads (the training loop its `schedule` and `eval`, the
optimiser its `optim`, ...). Values are typed once, here at the boundary: `--loader a,b` and
`--arch` become tuples, `--loader-options k=v,...` a dict of YAML-read values. The command line
(bench/cli/parser.py) is generated from these fields, one argparse group per section, so there
is one list of options; booleans are real flags (`--tta` / `--no-tta`), never `type=bool`.
Records and checkpoints store `RunConfig.flat()`: one mapping of every field, as before.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Optional

import yaml

from ..harness.modes import MODE_NAMES, MODES


def opt(default, help: str, **kw):
    """A config field: its default, its --help line and (optional) choices / a parse function."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def names(value) -> tuple[str, ...]:
    """'a, b' (CLI) or ['a', 'b'] / 'a' (YAML) -> ('a', 'b')."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(s for s in (str(v).strip() for v in items) if s)


def key_values(value) -> dict:
    """'k=v,k2=v2' -> {k: v, k2: v2}, each value read as YAML (16 -> int, false -> bool, none ->
    None, text stays text); a mapping (from a recipe) is taken as it is."""
    if isinstance(value, dict):
        return dict(value)
    pairs = [p.strip() for p in str(value or "").split(",") if p.strip()]
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ValueError(f"takes key=value pairs separated by commas, got {bad[0]!r} (e.g. 'pool=processes,chunk=16')")
    return {k.strip(): yaml.safe_load(v.strip()) for k, v in (p.split("=", 1) for p in pairs)}


@dataclass(frozen=True)
class Run:
    """what to run"""
    mode: str = opt("loader", "what to measure: " + "; ".join(f"{m.name}: {m.summary}" for m in MODES.values()), choices=MODE_NAMES)
    loader: tuple = opt(("torchvision",), "loader backend(s), comma-separated, or 'all'", parse=names)
    split: str = opt("train", "loader/tune modes: train | val | both", choices=("train", "val", "both"))
    recipe: Optional[str] = opt(None, "recipe name in bench/recipes or a YAML file: its values become the defaults")


@dataclass(frozen=True)
class Model:
    """model"""
    arch: tuple = opt(("resnet18",), "architecture(s), comma-separated, or 'all'", parse=names)
    blurpool: bool = opt(False, "BlurPool before strided convolutions")


@dataclass(frozen=True)
class Data:
    """data"""
    data: str = opt("embedded", "'embedded' (generated JPEGs), 'embedded:N' (N train images per class), 'fashion-mnist[:N]' or an ImageFolder path")
    skip_bad: bool = opt(False, "leave bad image files out (listed and counted) instead of stopping")
    batch_size: int = opt(64, "batch size per rank")
    res: int = opt(224, "train resolution (px)")
    val_res: Optional[int] = opt(None, "val/eval resolution (default: res)")
    scale_min: float = opt(0.08, "RandomResizedCrop: smallest crop area fraction, scale = (scale_min, 1)")
    crop_ratio: float = opt(224 / 256, "val center-crop side / resized shorter side")
    workers: Optional[int] = opt(None, "loader workers/threads (default: all cores for loader mode, half of them when the CPU also trains)")
    prefetch: int = opt(2, "batches prefetched per worker / pipeline depth")
    loader_options: dict = opt({}, "backend options, key=value comma-separated, values read as YAML (e.g. 'pool=processes,chunk=16'); "
                                   "each loader gets the keys it reads, a key none reads is an error", parse=key_values)


@dataclass(frozen=True)
class Schedule:
    """how long to train (schedule): epochs, learning rate and resolution over the run"""
    epochs: int = opt(1, "epochs (accuracy mode)")
    min_steps: Optional[int] = opt(None, "accuracy mode: at least this many optimiser steps; a small data set's schedule (epochs, "
                                         "warm-up, LR peak) is stretched to reach it (bench/training/schedule_rule.py); 0: off")
    lr_schedule: str = opt("triangular", "triangular | step | cosine | constant", choices=("triangular", "step", "cosine", "constant"))
    lr_peak_epoch: float = opt(2.0, "triangular: epoch of the peak (linear warm-up before it)")
    warmup_epochs: float = opt(0.0, "step/cosine: linear warm-up epochs")
    step_length: int = opt(30, "step: epochs between decays")
    step_ratio: float = opt(0.1, "step: decay factor")
    min_res: Optional[int] = opt(None, "progressive resizing: first-epoch resolution")
    max_res: Optional[int] = opt(None, "progressive resizing: final resolution")
    start_ramp: Optional[int] = opt(None, "progressive resizing: epoch the ramp starts")
    end_ramp: Optional[int] = opt(None, "progressive resizing: epoch max_res is reached")


@dataclass(frozen=True)
class Measure:
    """how long to measure (the measurement window)"""
    steps: Optional[int] = opt(None, "measured steps (loader/train/eval); per-epoch cap in accuracy mode")
    warmup: int = opt(5, "unmeasured warm-up steps before timing")
    seconds: Optional[float] = opt(None, "stop measuring after this many seconds")


@dataclass(frozen=True)
class Compute:
    """compute"""
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    amp: str = opt("auto", "auto | bf16 | fp16 | off", choices=("auto", "bf16", "fp16", "off"))
    channels_last: bool = opt(True, "channels-last memory format for model and inputs")
    compile: bool = opt(False, "torch.compile the model (falls back to eager with a message)")
    threads: Optional[int] = opt(None, "compute threads on CPU (default: cores - workers, at least 1)")
    seed: int = opt(0, "seed for init, order and augmentation")


@dataclass(frozen=True)
class Optim:
    """optimisation"""
    lr: float = opt(0.5, "peak learning rate per 256 images (scaled by batch_size x world / 256)")
    momentum: float = opt(0.9, "SGD momentum")
    nesterov: bool = opt(False, "Nesterov momentum")
    weight_decay: float = opt(5e-5, "weight decay (never on BN and bias)")
    label_smoothing: float = opt(0.1, "label smoothing")
    ema: float = opt(0.0, "EMA decay of the weights (0: off); the EMA model is evaluated too")
    backbone_lr: float = opt(1.0, "with --init: LR multiplier for the backbone")


@dataclass(frozen=True)
class Eval:
    """evaluation"""
    tta: bool = opt(False, "flip test-time augmentation")


@dataclass(frozen=True)
class Checkpoint:
    """checkpoints and transfer learning"""
    checkpoint_dir: Optional[str] = opt(None, "write a checkpoint each epoch here")
    resume: Optional[str] = opt(None, "resume from this checkpoint ('auto': latest in checkpoint_dir)")
    save_checkpoint: Optional[str] = opt(None, "save the final model here")
    init: Optional[str] = opt(None, "initialise from a checkpoint (classifier replaced if classes differ)")
    freeze_backbone: bool = opt(False, "with --init: train the classifier only")
    transfer_baseline: bool = opt(False, "without --init: this run from scratch is the baseline arm of a transfer-learning "
                                          "comparison (recorded as transfer 'scratch', shown beside the frozen and full arms)")


@dataclass(frozen=True)
class Output:
    """output"""
    out: Optional[str] = opt(None, "records file or folder (default results/local/<machine>.jsonl, git-ignored; make bench and --out results write the committed results/<machine>.jsonl)")
    json: bool = opt(False, "print the records as JSON lines, nothing else on stdout")
    progress: bool = opt(True, "progress bars")


SECTIONS = {"run": Run, "model": Model, "data": Data, "schedule": Schedule, "measure": Measure, "compute": Compute,
            "optim": Optim, "eval": Eval, "checkpoint": Checkpoint, "output": Output}
# field name -> its section (names are unique across sections: they are the CLI flags)
FIELDS = {f.name: (section, f) for section, cls in SECTIONS.items() for f in fields(cls)}


def base_type(cls, name: str):
    """int for Optional[int], etc. (the type argparse and the recipe loader convert to)."""
    tp = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def typed(name: str, value):
    """A raw value (CLI string, YAML scalar) as the field's type; ValueError says what is wanted."""
    section, f = FIELDS[name]
    if value is None:
        return None
    parse = f.metadata.get("parse")
    if parse:
        return parse(value)
    tp = base_type(SECTIONS[section], name)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if tp in (int, float):
        wanted = "an integer" if tp is int else "a number"
        if isinstance(value, bool) or (tp is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"must be {wanted}, not {value!r}")
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be {wanted}, not {value!r}") from None
    return value


@dataclass(frozen=True)
class RunConfig:
    run: Run = field(default_factory=Run)
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    schedule: Schedule = field(default_factory=Schedule)
    measure: Measure = field(default_factory=Measure)
    compute: Compute = field(default_factory=Compute)
    optim: Optim = field(default_factory=Optim)
    eval: Eval = field(default_factory=Eval)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    output: Output = field(default_factory=Output)

    @classmethod
    def of(cls, **flat) -> "RunConfig":
        """A config from field names (`RunConfig.of(mode="accuracy", res=32)`), typed."""
        return cls().replace(**flat)

    def replace(self, **flat) -> "RunConfig":
        unknown = sorted(set(flat) - set(FIELDS))
        if unknown:
            raise TypeError(f"no config field {unknown[0]!r}")
        by_section: dict = {}
        for k, v in flat.items():
            by_section.setdefault(FIELDS[k][0], {})[k] = typed(k, v)
        return dataclasses.replace(self, **{s: dataclasses.replace(getattr(self, s), **kv) for s, kv in by_section.items()})

    def flat(self) -> dict:
        """Every field by name: what records and checkpoints store."""
        return {k: getattr(getattr(self, s), k) for k, (s, _) in FIELDS.items()}

    def as_dict(self) -> dict:
        """{section: {field: value}}: what --print-config shows (the recipes' layout)."""
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}
