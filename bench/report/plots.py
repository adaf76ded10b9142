"""The report's PNG plots, each readable on its own (title, axes, machine names, settings)."""
from __future__ import annotations

from pathlib import Path

from .plot_bars import loader_plot, train_plots
from .plot_curves import accuracy_plot, scaling_plot, transfer_plot

NAMES = ("loader_throughput.png", "train_throughput.png", "data_wait.png", "scaling.png", "accuracy_vs_time.png", "transfer.png")


def write_plots(recs, hs, cs, ms, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in NAMES]
    loader_plot(hs, ms, paths[0])
    train_plots(hs, ms, paths[1], paths[2])
    scaling_plot(hs, cs, ms, paths[3])
    accuracy_plot(recs, hs, ms, paths[4])
    transfer_plot(recs, ms, paths[5])
    return paths
