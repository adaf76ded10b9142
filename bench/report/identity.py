"""What a record measured, and on what: the keys every table groups by.

* machine: the hardware fingerprint's `id` (CPU model, cores, GPU model and count).
* workload: kind, loader, slot (the split of a loader/scaling record, the architecture of a
  train/eval/accuracy record) and dataset name (+ the recipe and transfer mode of an accuracy run, the worker
  count of a scaling point, the case of a benchmark).
* options: what makes a run a *variant*: the loader options its backend read
  (`--loader-options pool=threads`) and the technique flags of VARIANT_FLAGS away from their
  default (`--compile`). `{}` is the loader's default configuration.
* settings: everything else in `config` that identifies the configuration (dataset, batch
  size, resolution, workers, steps, the backend's resolved settings, ...), as dotted keys.
  Never a per-run counter: those are under `metrics` since schema 2 (bench.results.schema).
A configuration = machine + workload + options + settings; its runs are repeated
measurements of one thing.
"""
from __future__ import annotations

import json
from functools import lru_cache

import yaml

from ..results.schema import OUTPUT_KEYS

# What the command line selected (`--loader all`, `--arch resnet50,resnet18`, `--split both`):
# the record's own kind/loader/arch/variant say what it measured, so these would only split
# one configuration by the invocation it came from.
SELECTORS = ("mode", "loader", "arch", "split")
# Flags that change technique, not workload: a run with one away from its default is a variant.
VARIANT_FLAGS = ("compile", "blurpool", "channels_last")
# Settings each machine resolves for itself (its device, its core count, the backend's choices
# for them): they differ between machines by design, so they never block a comparison across
# machines (the table says how they differ).
MACHINE_KEYS = ("device", "workers", "threads", "amp")
# Schedule rules of a recipe a run may set otherwise (`--min-steps 0`: small-images without its
# stretch for a small data set): such a run is another experiment than the recipe's, so it gets
# a row of its own instead of hiding (or being hidden by) the recipe's latest run.
RECIPE_RULES = ("min_steps",)
MACHINE_PREFIXES = ("backend.",)
# Where a run put its checkpoints: two runs that differ only here measured the same thing.
# (`init` and `resume` stay: the weights a run starts from change what it measures.)
WHERE_KEYS = ("checkpoint_dir", "save_checkpoint")


@lru_cache(maxsize=None)
def role(loader: str | None) -> str | None:
    """"loader" or "ceiling" from the registry; a name it lacks (an old backend) is a loader."""
    if loader is None:
        return None
    import loaders

    return loaders.role(loader) or "loader"


def machine_id(r) -> str:
    hw = r["hardware"]
    return hw.get("id") or f"{hw.get('cpu')}|{hw.get('cores')}|{hw.get('gpu')}|{hw.get('gpu_count')}"


def slot(r) -> str | None:
    kind = r.get("kind")
    if kind in ("train", "accuracy", "epoch", "eval"):
        return r.get("arch")
    if kind == "ceiling":  # its variant names the loop that won: an outcome, not a choice
        return None
    return r.get("variant") or r.get("arch")


def flat(d: dict, pre: str = ""):
    """(dotted key, value) pairs; `loader_options` stays whole (it is parsed, not compared)."""
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "loader_options":
            yield from flat(v, f"{pre}{k}.")
        else:
            yield f"{pre}{k}", v


def leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _run_level(key: str) -> bool:
    """A run setting (at any nesting), not one of the backend's own."""
    return not key.startswith(MACHINE_PREFIXES)


def get(settings: dict, name: str, default=None):
    """A run setting by name wherever the config nests it ('res' or 'data.res')."""
    if name in settings:
        return settings[name]
    return next((v for k, v in settings.items() if leaf(k) == name and _run_level(k)), default)


def setting(r, name: str, default=None):
    """One run setting of a record's config, however nested."""
    return get(dict(flat(r["config"])), name, default)


@lru_cache(maxsize=1)
def flag_defaults() -> dict:
    from ..cli.config import FIELDS

    return {name: FIELDS[name][1].default for name in VARIANT_FLAGS}


def parse_options(value) -> dict:
    """`--loader-options` as recorded: 'k=v,k2=v2' (values read as YAML) or a mapping."""
    if isinstance(value, dict):
        return dict(value)
    pairs = [p.split("=", 1) for p in str(value or "").split(",") if "=" in p]
    return {k.strip(): yaml.safe_load(v.strip()) for k, v in pairs}


def options(r) -> dict:
    items = [(k, v) for k, v in flat(r["config"]) if _run_level(k)]
    opts = parse_options(next((v for k, v in items if leaf(k) == "loader_options"), None))
    name = r.get("loader")
    if name:
        import loaders

        if name in loaders.REGISTRY:  # a sweep shares one option string: keep what this backend read
            opts = loaders.options_for(name, opts)
    defaults = flag_defaults()
    for k, v in items:
        if leaf(k) in defaults and v != defaults[leaf(k)]:
            opts[leaf(k)] = v
    return dict(sorted(opts.items()))


def settings(r) -> dict:
    drop = set(SELECTORS) | set(OUTPUT_KEYS) | set(WHERE_KEYS) | {"loader_options"}
    out = {k: v for k, v in flat(r["config"]) if not (_run_level(k) and leaf(k) in drop)}
    out["dataset.fingerprint"] = r["dataset"].get("fingerprint")
    return dict(sorted(out.items()))


def portable(s: dict) -> dict:
    """Settings without those each machine resolves for itself."""
    return {k: v for k, v in s.items() if leaf(k) not in MACHINE_KEYS and _run_level(k)}


def workload(r) -> tuple:
    """(kind, loader, slot, dataset, extra): extra is the recipe of an accuracy run, and the
    worker count of a scaling point (each point of a curve is a workload of its own)."""
    kind = r.get("kind")
    extra = None
    if kind in ("accuracy", "epoch"):  # a transfer-learning mode is an experiment of its own
        extra = " · ".join(str(x) for x in (setting(r, "recipe"), setting(r, "transfer"), *rules_changed(r)) if x) or None
    elif kind == "scaling":
        extra = f"{r['metrics'].get('workers', setting(r, 'workers'))} workers"
    elif kind == "benchmark":  # several benchmark cases may share loader and split
        extra = setting(r, "benchmark")
    return (kind, r.get("loader"), slot(r), r["dataset"].get("name"), extra)


def rules_changed(r) -> list[str]:
    """'min_steps=0' for each RECIPE_RULES value of the run that is not its recipe's."""
    recipe = setting(r, "recipe")
    if not recipe:
        return []
    ours = recipe_values(str(recipe))
    out = []
    for name in RECIPE_RULES:
        v = setting(r, name)
        if v is not None and name in ours and v != ours[name]:
            out.append(f"{name}={v}")
    return out


@lru_cache(maxsize=None)
def recipe_values(recipe: str) -> dict:
    """A recipe's values, {} where it is no longer there (records outlive recipes)."""
    from ..cli.parser import ConfigError, load_recipe

    try:
        return load_recipe(recipe)
    except (ConfigError, OSError):
        return {}


def dumps(x) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def config_key(r) -> str:
    return dumps([machine_id(r), workload(r), options(r), settings(r)])


def headline_key(r) -> str:
    """A configuration's place in the report: the latest configuration per key is shown."""
    return dumps([machine_id(r), workload(r), options(r)])


def show_options(opts: dict) -> str:
    return ", ".join(k if v is True else f"{k}={v}" for k, v in opts.items()) or "default"


def differs(a: dict, b: dict) -> list[str]:
    """'key: a → b' for every key whose value differs (a missing key shown as —)."""
    show = lambda v: "—" if v is None else str(v)  # noqa: E731
    return [f"{k}: {show(a.get(k))} → {show(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
