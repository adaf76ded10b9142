"""Curve plots: loader scaling with workers, top-1 against wall time, transfer learning."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from .accuracy import TRANSFER, epoch_runs
from .cells import acc
from .identity import get, rules_changed
from .plan import TARGET
from .plot_common import color, empty, grid, save


def scaling_plot(hs, cs, ms, path: Path) -> None:
    pts = defaultdict(dict)  # (machine, loader) → {workers: img/s}
    for h in sorted(cs, key=lambda h: str(h.rec.get("time"))):
        if h.kind == "scaling" and h.slot == "train" and h.ok and h.value() and not h.options:
            pts[(h.machine, h.loader)][h.metrics.get("workers", get(h.settings, "workers"))] = h.value()
    machines = [m for m in ms if any(k[0] == m for k in pts)]
    if not machines:
        return empty(path, "Loader scaling with workers", "scaling")
    names = sorted({k[1] for k in pts})
    fig, axes = grid(len(machines), 6, 4.4)
    for ax, m in zip(axes, machines):
        seen = set()
        for n in names:
            curve = dict(sorted(pts.get((m, n), {}).items()))
            if curve:
                ax.plot(list(curve), list(curve.values()), marker="o", color=color(names.index(n)), label=n)
                seen |= set(curve)
        if ms[m].gpu:  # the planning target: only a GPU machine is planned for
            _targets(ax, [h for h in hs if h.machine == m and h.kind == "train" and h.role == "ceiling" and h.ok and not h.options])
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(seen), [str(w) for w in sorted(seen)])
        ax.minorticks_off()
        ax.set_xlabel("loader workers (cores)")
        ax.set_ylabel("loader-only images / s (train split)")
        ax.set_title(ms[m].label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Loader-only throughput against workers (measured points only)", fontsize=10)
    save(fig, path, legend=True)


def _targets(ax, synthetic) -> None:
    for i, syn in enumerate(synthetic):
        y = TARGET * syn.value()
        ax.axhline(y, color="grey", ls=(0, (2, 2 + i)), lw=1)
        ax.text(0.01, y, f"{TARGET:.0%} of synthetic {syn.slot} ({y:,.0f})", transform=ax.get_yaxis_transform(), fontsize=7, va="bottom")


def accuracy_curves(recs) -> dict[tuple, list]:
    """(machine, arch, loader, dataset) → the epoch records of the run drawn for it: the latest
    that follows its recipe's rules (an ablation such as --min-steps 0 only where there is no
    other), the run the machine matrix shows."""
    latest = {}
    rank = lambda rs: (not rules_changed(rs[-1]), str(rs[-1].get("time")))  # noqa: E731
    for key, rs in epoch_runs(recs).items():
        run_id, machine, arch, loader, data, transfer, _ = key
        if transfer is None and rs[0]["metrics"].get("wall_s") is not None:
            k = (machine, arch, loader, data)
            if k not in latest or rank(rs) > rank(latest[k]):
                latest[k] = rs
    return latest


def accuracy_plot(recs, hs, ms, path: Path) -> None:
    latest = accuracy_curves(recs)
    if not latest:
        return empty(path, "Validation top-1 against wall time", "epoch")
    datasets = sorted({k[3] for k in latest}, key=str)
    label = lambda k: f"{k[1]} · {k[2]} · {ms[k[0]].label}"  # noqa: E731
    labels = sorted({label(k) for k in latest})  # one colour per legend entry, the same in every subplot
    fig, axes = grid(len(datasets), 6, 4.4)
    for ax, data in zip(axes, datasets):
        runs = sorted(((k, rs) for k, rs in latest.items() if k[3] == data), key=lambda kv: str(kv[0]))
        minutes = max(r["metrics"]["wall_s"] for _, rs in runs for r in rs) > 300
        for key, rs in runs:
            xs = [r["metrics"]["wall_s"] / (60 if minutes else 1) for r in rs]
            ax.plot(xs, [acc(r["metrics"]["top1"]) for r in rs], marker="o", ms=3, color=color(labels.index(label(key)), len(labels)),
                    label=label(key))
        ax.set_xlabel("wall time (min)" if minutes else "wall time (s)")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_title(f"dataset {data}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Validation top-1 against wall time (per architecture, loader and machine: the latest run that follows its recipe)", fontsize=10)
    save(fig, path, legend=True)


def transfer_plot(recs, ms, path: Path) -> None:
    groups = defaultdict(dict)  # (machine, arch, dataset) → {mode: epoch records}
    for (run_id, machine, arch, loader, data, transfer, _), rs in epoch_runs(recs).items():
        if transfer:
            prev = groups[(machine, arch, data)].get(transfer)
            if prev is None or str(rs[-1].get("time")) > str(prev[-1].get("time")):
                groups[(machine, arch, data)][transfer] = rs
    if not groups:
        return empty(path, "Transfer learning: frozen, full, scratch", "transfer-learning epoch")
    fig, axes = grid(len(groups), 5.5, 4.2)
    for ax, ((machine, arch, data), modes) in zip(axes, sorted(groups.items(), key=str)):
        for mode in TRANSFER:
            rs = modes.get(mode)
            if rs:
                ax.plot([r["metrics"].get("epoch") for r in rs], [acc(r["metrics"]["top1"]) for r in rs], marker="o", ms=3,
                        color=color(TRANSFER.index(mode)), label=mode)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_title(f"{arch} on {data} · {ms[machine].label}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Transfer learning, same budget: backbone frozen, full fine-tuning, from scratch", fontsize=10)
    save(fig, path, legend=True)
