"""What a backend's options (spec.options, `--loader-options k=v`) may be: each backend
declares its keys with their types and allowed values in the registry, so a bad value is one
line at the command line instead of a traceback from inside a backend."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    kind: type  # int | float | bool | str
    help: str = ""
    choices: tuple = ()
    low: float | None = None  # numbers: the smallest allowed
    high: float | None = None
    none_ok: bool = False  # `none` (YAML null) is allowed, meaning the backend's default / no limit
    tune: bool = False  # `--mode tune` tries each of the choices (those that fail here are rows, not stops)

    def problem(self, value) -> str | None:
        """Why `value` is not allowed, or None."""
        if value is None:
            return None if self.none_ok else "must be given a value"
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))
        if not ok:
            return f"must be {self.describe()}, not {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, not {value!r}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"must be {self.describe()}, not {value!r}"
        return None

    def describe(self) -> str:
        if self.choices:
            text = " | ".join(map(str, self.choices))
        elif self.kind in (int, float):
            name = "an integer" if self.kind is int else "a number"
            lo = "" if self.low is None else f" >= {self.low:g}"
            hi = "" if self.high is None else f" <= {self.high:g}"
            text = name + (lo + ("," if lo and hi else "") + hi)
        else:
            text = {bool: "true or false", str: "text"}[self.kind]
        return text + (" (or none)" if self.none_ok else "")
