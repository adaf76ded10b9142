"""What every plot shares: the Agg backend, one colour per machine / loader, saving, and the
placeholder a plot gets when there are no records for it."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
MANY = plt.get_cmap("tab20").colors
SPREAD_NOTE = "error bars: min–max of the runs at the latest commit"


def color(i: int, n: int = 0):
    """The i-th of n colours: tab10, or tab20 when more than ten lines share a legend (a colour
    repeated in one legend names two lines at once)."""
    cs = MANY if n > len(COLORS) else COLORS
    return cs[i % len(cs)]


def save(fig, path: Path, legend: bool = False) -> None:
    """Tight layout; with `legend`, one figure legend gathered from every subplot."""
    if legend:
        found = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                found.setdefault(lab, h)
        if found:
            fig.legend(list(found.values()), list(found), loc="lower center", ncol=min(len(found), 3), fontsize=8, frameon=False)
            rows = (len(found) + 2) // 3
            fig.tight_layout(rect=(0, min(0.06 * rows, 0.3), 1, 1))
        else:
            fig.tight_layout()
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def empty(path: Path, title: str, what: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.4, f"no {what} records yet", ha="center", color="grey")
    save(fig, path)


def grid(n: int, width: float = 5.5, height: float = 4.2):
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, width * n), height), squeeze=False)
    return fig, list(axes[0])


def yerr(hs, metric="images_per_sec"):
    """Asymmetric error bars from each headline's spread (zero where a single run)."""
    lo, hi = [], []
    for h in hs:
        sp, v = h.spread(metric), h.value(metric)
        lo.append(v - sp[0] if sp else 0)
        hi.append(sp[1] - v if sp else 0)
    return [lo, hi]
