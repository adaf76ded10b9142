"""The command line, generated from the config sections: defaults < recipe < CLI flags.

A recipe is a YAML file with the same sections as RunConfig (`data:`, `model:`, `schedule:`,
`optim:`, `eval:`, ...); a key in the wrong section or a section that does not exist is an
error that names the file, the key and where it belongs.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import fields
from pathlib import Path

import yaml

from .config import FIELDS, SECTIONS, RunConfig, base_type, typed

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


class ConfigError(ValueError):
    """A bad recipe or option value: one line, what is wrong and what to do."""


def load_recipe(name: str) -> dict:
    """A recipe as {field: typed value}."""
    path = Path(name)
    if not path.suffix:
        path = RECIPES / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
        raise ConfigError(f"recipe {name!r} not found; known recipes: {known} (or give a path to a YAML file)")
    raw = yaml.safe_load(path.read_text()) or {}
    values: dict = {}
    for section, keys in raw.items():
        if section not in SECTIONS or not isinstance(keys, dict):
            raise ConfigError(f"{path}: {section!r} is not a section; sections are {', '.join(SECTIONS)}")
        for k, v in keys.items():
            if k not in FIELDS:
                raise ConfigError(f"{path}: unknown key {section}.{k}")
            if FIELDS[k][0] != section:
                raise ConfigError(f"{path}: {k!r} belongs in section {FIELDS[k][0]!r}, not {section!r}")
            try:
                values[k] = typed(k, v)
            except ValueError as e:
                raise ConfigError(f"{path}: {section}.{k} {e}") from None
    return values


def _cli_type(name: str):
    """argparse `type=` for a field: its parse function or base type, with a one-line error."""
    section, f = FIELDS[name]
    convert = f.metadata.get("parse") or base_type(SECTIONS[section], name)

    def parse(text):
        try:
            return convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e) if f.metadata.get("parse") else f"{text!r} is not {'an integer' if convert is int else 'a number'}")

    parse.__name__ = getattr(convert, "__name__", name)
    return parse


EXAMPLES = """examples (CPU, a minute or less each):
  python -m bench.run                                         loader-only img/s of torchvision, train and val
  python -m bench.run --mode loader --loader all --steps 40   every loader on this machine
  python -m bench.run --mode train --loader torchvision --arch demo_net --res 64 --steps 30
  python -m bench.run --mode accuracy --recipe cpu-demo      a 12-epoch demo (about 30 s)
  python -m bench.run --recipe rn18-16ep --print-config      what a recipe sets
on a GPU machine:
  python -m bench.run --mode train --loader torchvision,dali --arch resnet50 --batch-size 256
  torchrun --nproc_per_node 8 -m bench.run --mode accuracy --recipe rn50-88ep --loader dali --data /data/imagenet"""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong, a "did you mean" where a flag or a
    choice is misspelled, and where the full help is (never the whole usage block)."""

    def error(self, message: str):
        import difflib
        import re

        hint = ""
        m = re.match(r"unrecognized arguments: (\S+)", message)
        if m:
            flags = [o for a in self._actions for o in a.option_strings]
            close = difflib.get_close_matches(m.group(1).split("=")[0], flags, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
        m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = [c.strip(" '") for c in m.group(3).split(",")]
            close = difflib.get_close_matches(m.group(2), choices, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
        self.exit(2, f"error: {message}{hint} ({self.prog} --help lists every flag)\n")


def _help(f, cls) -> str:
    """The field's help with its default (argparse cannot show it: defaults are SUPPRESSed so
    that a recipe's value is not overridden by a flag nobody gave)."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default in (None, {}, "") else f" (default: {str(default).lower() if isinstance(default, bool) else default})"
    return f.metadata.get("help", "") + shown


def build_parser() -> argparse.ArgumentParser:
    import loaders

    p = Parser(prog="python -m bench.run", usage="python -m bench.run [--mode MODE] [--loader NAMES] [--arch NAMES] [options]",
               description="Measure loaders, training and accuracy. Options by purpose below; examples at the end.",
               epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    for section, cls in SECTIONS.items():
        group = p.add_argument_group(cls.__doc__ or section)
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            kw = {"default": argparse.SUPPRESS, "help": _help(f, cls)}
            if f.name == "loader":
                kw["help"] += "; here: " + ", ".join(loaders.names())
            elif f.name == "arch":
                kw["help"] += "; " + ", ".join(arch_names())
            if base_type(cls, f.name) is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            else:
                choices = f.metadata.get("choices")
                group.add_argument(flag, type=_cli_type(f.name), choices=choices, metavar=None if choices else f.name.upper(), **kw)
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return p


def arch_names() -> list[str]:
    import models

    return models.names()


def resolve(argv=None) -> tuple[RunConfig, argparse.Namespace]:
    """defaults < recipe < CLI flags."""
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in FIELDS}
    values = load_recipe(given["recipe"]) if given.get("recipe") else {}
    values.update(given)
    cfg = RunConfig.of(**values)
    from .validate import problem

    why = problem(cfg)
    if why:
        raise ConfigError(why)
    return cfg, args
