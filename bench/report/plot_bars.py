"""Bar plots: loader-only throughput per machine, training throughput (with the compute
ceiling as a line) and the data-wait share. Loaders at default settings only."""
from __future__ import annotations

from pathlib import Path

from . import lookups as L
from .machine_sections import defaults_on
from .plot_common import SPREAD_NOTE, color, empty, grid, save, yerr


def _bars(ax, groups, series, cell, fmt, colors):
    """Grouped bars: one group per x label, one bar per series; cell(group, series) → headline."""
    present = [s for s in series if any(cell(g, s) for g in groups)]
    width = 0.8 / max(len(present), 1)
    for j, s in enumerate(present):
        idx = [i for i, g in enumerate(groups) if cell(g, s)]
        hs = [cell(groups[i], s) for i in idx]
        xs = [i + (j - (len(present) - 1) / 2) * width for i in idx]
        ys = [h.value() for h in hs]
        err = yerr(hs)
        bars = ax.bar(xs, ys, width * 0.92, yerr=err if any(map(any, err)) else None, capsize=3, label=s, color=colors[s])
        ax.bar_label(bars, [fmt(y) for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return width


def loader_plot(hs, ms, path: Path) -> None:
    per = {m: [h for h in defaults_on(hs, m, ("loader",)) if h.role == "loader" and h.ok and h.value()] for m in ms}
    splits = sorted({h.slot for v in per.values() for h in v}, key=str)
    if not splits:
        return empty(path, "Loader-only throughput", "loader")
    labels = {m: ms[m].label for m in ms}
    colors = {ms[m].label: color(i) for i, m in enumerate(ms)}
    fig, axes = grid(len(splits))
    for ax, split in zip(axes, splits):
        names = sorted({h.loader for v in per.values() for h in v if h.slot == split})
        find = {(h.loader, labels[m]): h for m, v in per.items() for h in v if h.slot == split}
        _bars(ax, names, [labels[m] for m in ms], lambda g, s: find.get((g, s)), lambda y: f"{y:,.0f}", colors)
        for m, v in per.items():
            c = L.decode_ceiling(v[0], hs) if v and split == "train" else None
            if c:
                ax.axhline(c.value(), color=colors[labels[m]], ls="--", lw=1, label=f"decode ceiling · {labels[m]}")
        ax.set_title(f"{split} split")
        ax.set_ylabel("images / s (loader only)")
    fig.suptitle(f"Loader-only throughput, default settings ({SPREAD_NOTE})", fontsize=10)
    save(fig, path, legend=True)


def train_plots(hs, ms, ips_path: Path, wait_path: Path) -> None:
    per = {m: [h for h in defaults_on(hs, m, ("train",)) if h.ok and h.value()] for m in ms}
    per = {m: v for m, v in per.items() if any(h.role == "loader" for h in v)}
    if not per:
        empty(ips_path, "Training throughput", "train")
        return empty(wait_path, "Data-wait share", "train")
    names = sorted({h.loader for v in per.values() for h in v if h.role == "loader"})
    colors = {n: color(i) for i, n in enumerate(names)}
    for path, metric in ((ips_path, "images_per_sec"), (wait_path, "data_wait_frac")):
        fig, axes = grid(len(per))
        for ax, (m, v) in zip(axes, per.items()):
            archs = sorted({str(h.slot) for h in v})
            find = {(str(h.slot), h.loader): h for h in v if h.role == "loader" and h.metrics.get(metric) is not None}
            cell = (lambda g, s: find.get((g, s))) if metric == "images_per_sec" else (lambda g, s: _Wait(find[(g, s)]) if (g, s) in find else None)
            fmt = (lambda y: f"{y:,.0f}") if metric == "images_per_sec" else (lambda y: f"{y:.0%}")
            _bars(ax, archs, names, cell, fmt, colors)
            if metric == "images_per_sec":
                _ceiling_lines(ax, archs, v)
                ax.set_ylabel("training images / s")
            else:
                ax.set_ylim(0, 1.1)
                ax.set_ylabel("share of step time waiting for data")
            ax.set_title(ms[m].label, fontsize=9)
        what = "Training throughput (dashed: synthetic compute ceiling)" if metric == "images_per_sec" else "Data-wait share of training steps"
        fig.suptitle(f"{what}, default settings", fontsize=10)
        save(fig, path, legend=True)


def _ceiling_lines(ax, archs, v):
    for i, arch in enumerate(archs):
        syn = next((h for h in v if str(h.slot) == arch and h.role == "ceiling"), None)
        if syn:
            ax.hlines(syn.value(), i - 0.45, i + 0.45, colors="black", linestyles="--", lw=1.2, label="synthetic (compute ceiling)")
            ax.annotate(f"synthetic {syn.value():,.0f}", (i - 0.45, syn.value()), fontsize=7, ha="left", va="bottom",
                        xytext=(0, 8), textcoords="offset points")


class _Wait:
    """A headline seen through its data-wait share (so _bars can plot any metric)."""

    def __init__(self, h):
        self.h = h

    def value(self, metric=None):
        return self.h.metrics.get("data_wait_frac")

    def spread(self, metric=None):
        return self.h.spread("data_wait_frac")
