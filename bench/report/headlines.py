"""Runs → configurations → headlines, and the machines they ran on.

A headline is the latest run of a configuration, with the number of runs behind it and their
spread (min–max) among the runs at the same code version (git commit). Per machine, workload
and options only the latest configuration is a headline: when the settings change (a new
default, another window length) the newer configuration replaces the older one, whose runs
stay in the history table.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from ..results.hardware import machine_label
from . import identity as I

VERSIONS = ("torch", "torchvision", "dali", "ffcv", "pillow", "python", "cuda", "driver")


def metric_of(r) -> str:
    return "top1" if r.get("kind") == "accuracy" else "images_per_sec"


@dataclass
class Headline:
    rec: dict  # the latest run
    runs: list  # every run of this configuration, oldest first (ok or not)
    older: list = field(default_factory=list)  # runs of configurations it replaced (same workload and options)

    @property
    def kind(self):
        return self.rec.get("kind")

    @property
    def loader(self):
        return self.rec.get("loader")

    @property
    def ok(self) -> bool:
        return self.rec["status"] == "ok"

    @cached_property
    def machine(self) -> str:
        return I.machine_id(self.rec)

    @cached_property
    def slot(self):
        return I.slot(self.rec)

    @cached_property
    def options(self) -> dict:
        return I.options(self.rec)

    @cached_property
    def settings(self) -> dict:
        return I.settings(self.rec)

    @property
    def role(self):
        return I.role(self.loader)

    @property
    def metrics(self) -> dict:
        return self.rec["metrics"]

    def value(self, name: str | None = None):
        return self.metrics.get(name or metric_of(self.rec)) if self.ok else None

    @cached_property
    def ok_runs(self) -> list:
        return [r for r in self.runs if r["status"] == "ok"]

    @property
    def n(self) -> int:
        return len(self.ok_runs)

    @cached_property
    def same_commit(self) -> list:
        commit = self.rec["git"].get("commit")
        return [r for r in self.ok_runs if r["git"].get("commit") == commit]

    def spread(self, name: str | None = None) -> tuple | None:
        """(min, max) of the metric over the runs at the latest run's commit, if ≥ 2."""
        vals = [r["metrics"].get(name or metric_of(r)) for r in self.same_commit]
        vals = [v for v in vals if isinstance(v, (int, float))]
        return (min(vals), max(vals)) if len(vals) >= 2 else None


def configurations(recs) -> dict[str, list]:
    """config key → its runs, oldest first."""
    out = defaultdict(list)
    for r in sorted(recs, key=lambda r: str(r.get("time") or "")):
        out[I.config_key(r)].append(r)
    return out


def headlines(recs, kinds=None) -> list[Headline]:
    """The latest configuration per (machine, workload, options), in time order."""
    groups = defaultdict(list)
    for runs in configurations(r for r in recs if kinds is None or r.get("kind") in kinds).values():
        groups[I.headline_key(runs[-1])].append(runs)
    out = []
    for cfgs in groups.values():
        cfgs.sort(key=lambda runs: str(runs[-1].get("time")))
        older = sorted((r for runs in cfgs[:-1] for r in runs), key=lambda r: str(r.get("time")))
        out.append(Headline(cfgs[-1][-1], cfgs[-1], older))
    return sorted(out, key=lambda h: str(h.rec.get("time")))


def per_configuration(recs) -> list[Headline]:
    """Every configuration's latest run (scaling curves: one configuration per worker count)."""
    return [Headline(runs[-1], runs) for runs in configurations(recs).values()]


@dataclass
class Machine:
    id: str
    label: str
    hw: dict
    count: int = 0
    versions: dict = field(default_factory=dict)

    @property
    def gpu(self) -> bool:
        return bool(self.hw.get("gpu"))


def machines(recs) -> dict[str, Machine]:
    """One Machine per fingerprint id, CPU-only ones first; labels made unique."""
    ms: dict[str, Machine] = {}
    for r in sorted(recs, key=lambda r: str(r.get("time") or "")):
        hw, mid = r["hardware"], I.machine_id(r)
        m = ms.setdefault(mid, Machine(mid, hw.get("label") or machine_label(hw), hw))
        m.count += 1
        m.hw = hw  # the latest record's view of the machine
        for k in VERSIONS:
            if hw.get(k) and hw[k] not in m.versions.setdefault(k, []):
                m.versions[k].append(hw[k])
    seen = defaultdict(int)
    for m in ms.values():
        seen[m.label] += 1
    for m in ms.values():
        if seen[m.label] > 1:
            m.label += f" [{m.id[:6]}]"
    return dict(sorted(ms.items(), key=lambda kv: (kv[1].gpu, kv[1].label)))


def find(hs, **match) -> list[Headline]:
    """Headlines whose attributes equal `match` (machine=..., kind=..., slot=..., options=...)."""
    return [h for h in hs if all(getattr(h, k) == v for k, v in match.items())]
