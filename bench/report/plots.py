"""The report's PNG plots (matplotlib, Agg backend: no display needed). Each plot uses the latest
ok record per (workload, machine); the tables beside them carry the configurations."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = plt.get_cmap("tab10").colors


def _latest_ok(recs, kind, ms):
    from . import mid

    out = {}
    for r in recs:
        if r.get("kind") == kind and r["status"] == "ok" and r["metrics"].get("images_per_sec") is not None:
            out[(r.get("arch"), r.get("loader"), r.get("variant"), mid(r))] = r
    return out


def _bars(ax, groups: list[str], ms, values: dict, fmt, log=False):
    """Grouped bars: one group per x label, one bar per machine (values[(group, machine id)])."""
    ids = [m for m in ms if any((g, m) in values for g in groups)]
    width = 0.8 / max(len(ids), 1)
    for j, m in enumerate(ids):
        color = COLORS[list(ms).index(m) % 10]  # one colour per machine across every subplot
        xs = [i + (j - (len(ids) - 1) / 2) * width for i, g in enumerate(groups) if (g, m) in values]
        ys = [values[(g, m)] for g in groups if (g, m) in values]
        bars = ax.bar(xs, ys, width * 0.92, label=ms[m].label, color=color)
        ax.bar_label(bars, [fmt(y) for y in ys], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _spread(vals) -> bool:
    vals = [v for v in vals if v and v > 0]
    return bool(vals) and max(vals) / min(vals) > 30


def _save(fig, path: Path, legend=False):
    if legend:
        found = {}
        for ax in fig.axes:  # a machine may be missing from some subplots: collect from all
            for h, lab in zip(*ax.get_legend_handles_labels()):
                found.setdefault(lab, h)
        h, lab = list(found.values()), list(found)
        if h:
            fig.legend(h, lab, loc="lower center", ncol=min(len(h), 3), fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, 0.08, 1, 1))
        else:
            fig.tight_layout()
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _empty(path: Path, title: str, what: str):
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.4, f"no {what} records", ha="center", color="grey")
    _save(fig, path)


def loader_plot(recs, ms, path: Path):
    data = _latest_ok(recs, "loader", ms)
    ceil = _latest_ok(recs, "ceiling", ms)
    splits = sorted({k[2] or "" for k in data}) or []
    if not data:
        return _empty(path, "Loader-only throughput", "loader")
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.2), squeeze=False)
    for ax, split in zip(axes[0], splits):
        vals = {(k[1], k[3]): r["metrics"]["images_per_sec"] for k, r in data.items() if (k[2] or "") == split}
        if split == "train":  # the ceiling is a train-style decode + crop limit
            vals.update({("ceiling", k[3]): r["metrics"]["images_per_sec"] for k, r in ceil.items()})
        groups = sorted({g for g, _ in vals}, key=lambda g: (g == "ceiling", g))
        _bars(ax, groups, ms, vals, lambda y: f"{y:,.0f}", log=_spread(vals.values()))
        ax.set_title(f"{split or 'loader'} split")
        ax.set_ylabel("images / s")
    fig.suptitle("Loader-only throughput per backend and machine")
    _save(fig, path, legend=True)


def train_plots(recs, ms, ips_path: Path, wait_path: Path):
    data = _latest_ok(recs, "train", ms)
    if not data:
        _empty(ips_path, "Training throughput", "train")
        return _empty(wait_path, "Data-wait fraction", "train")
    archs = sorted({str(k[0]) for k in data})
    for path, metric, title, ylabel, fmt in (
            (ips_path, "images_per_sec", "Training throughput per architecture, loader and machine", "images / s", lambda y: f"{y:,.0f}"),
            (wait_path, "data_wait_frac", "Share of step time waiting for data", "data-wait fraction", lambda y: f"{y:.0%}")):
        fig, axes = plt.subplots(1, len(archs), figsize=(max(5.5, 4.5 * len(archs)), 4.2), squeeze=False)
        for ax, arch in zip(axes[0], archs):
            vals = {(str(k[1]), k[3]): r["metrics"].get(metric) for k, r in data.items() if str(k[0]) == arch}
            vals = {k: v for k, v in vals.items() if v is not None}
            _bars(ax, sorted({g for g, _ in vals}), ms, vals, fmt, log=metric == "images_per_sec" and _spread(vals.values()))
            ax.set_title(arch)
            ax.set_ylabel(ylabel)
            if metric == "data_wait_frac":
                ax.set_ylim(0, 1.08)
        fig.suptitle(title)
        _save(fig, path, legend=True)


def accuracy_plot(recs, ms, path: Path):
    from . import acc, mid

    runs = defaultdict(list)
    for r in recs:
        m = r["metrics"]
        if r.get("kind") == "epoch" and r["status"] == "ok" and m.get("top1") is not None and m.get("wall_s") is not None:
            runs[(r.get("run_id"), r.get("arch"), r.get("loader"), mid(r))].append(r)
    if not runs:
        return _empty(path, "Accuracy vs wall time", "epoch")
    minutes = max(r["metrics"]["wall_s"] for rs in runs.values() for r in rs) > 300
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, ((run, arch, loader, m), rs) in enumerate(sorted(runs.items(), key=lambda kv: str(kv[0]))):
        rs.sort(key=lambda r: r["metrics"].get("epoch", 0))
        xs = [r["metrics"]["wall_s"] / (60 if minutes else 1) for r in rs]
        ax.plot(xs, [acc(r["metrics"]["top1"]) for r in rs], marker="o", ms=3, color=COLORS[i % 10],
                label=f"{arch} · {loader} · {ms[m].label}")
    ax.set_xlabel("wall time (min)" if minutes else "wall time (s)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Validation top-1 vs wall time (one line per accuracy run)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def write_plots(recs, ms, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("loader_throughput.png", "train_throughput.png", "data_wait.png", "accuracy_vs_time.png")]
    loader_plot(recs, ms, paths[0])
    train_plots(recs, ms, paths[1], paths[2])
    accuracy_plot(recs, ms, paths[3])
    return paths
