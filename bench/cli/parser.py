"""The command line, generated from the config sections: defaults < recipe < CLI flags.

A recipe is a YAML file with the same sections as RunConfig (`data:`, `model:`, `schedule:`,
`optim:`, `eval:`, ...); a key in the wrong section or a section that does not exist is an
error that names the file, the key and where it belongs.
"""
from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="Measure loaders, training and accuracy.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for section, cls in SECTIONS.items():
        group = p.add_argument_group(cls.__doc__ or section)
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            kw = {"default": argparse.SUPPRESS, "help": f.metadata.get("help", "")}
            if base_type(cls, f.name) is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            else:
                group.add_argument(flag, type=_cli_type(f.name), choices=f.metadata.get("choices"), metavar=f.name.upper(), **kw)
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    return p


def resolve(argv=None) -> tuple[RunConfig, argparse.Namespace]:
    """defaults < recipe < CLI flags."""
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in FIELDS}
    values = load_recipe(given["recipe"]) if given.get("recipe") else {}
    values.update(given)
    return RunConfig.of(**values), args
