"""Assemble the report from records: the sections in reading order, the files it writes, and
the terminal tables (`--summary`, this run's table after `make bench`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..results import Records, load
from . import cells as C
from . import identity as I
from . import lookups as L
from .accuracy import feature_maps, per_architecture, transfer
from .document import Plot, Section, Table
from .headlines import Headline, Machine, headlines, machines, per_configuration
from .history import failures, history, others
from .machine_sections import matrix, steady_state
from .plan import section as plan_section
from .plots import write_plots
from .variants import across, variants


@dataclass
class Model:
    """Everything the sections read, computed once."""
    recs: Records
    hs: list[Headline]  # latest configuration per (machine, workload, options)
    cs: list[Headline]  # latest run of every configuration
    ms: dict[str, Machine]


def model(recs: Records) -> Model:
    return Model(recs, headlines(recs), per_configuration(recs), machines(recs))


def machines_section(ms) -> Section:
    sec = Section("Machines", intro="One row per hardware fingerprint (CPU model, cores, GPU model and count); versions "
                                    "seen in its records.")
    t = sec.add(Table(["machine", "id", "CPU", "cores", "RAM GB", "GPU", "GPU GB", "driver / CUDA", "torch", "torchvision",
                       "DALI", "FFCV", "Pillow", "Python", "OS", "records"]))
    for m in ms.values():
        v = lambda k: " / ".join(map(str, m.versions.get(k, []))) or C.DASH  # noqa: E731
        gpu = f"{m.hw['gpu']} ×{m.hw.get('gpu_count', 1)}" if m.gpu else "none"
        t.add([m.label, m.id, C.text(m.hw.get("cpu")), C.text(m.hw.get("cores")), C.text(m.hw.get("ram_gb")), gpu,
               C.text(m.hw.get("gpu_mem_gb")), f"{v('driver')} / {v('cuda')}", v("torch"), v("torchvision"), v("dali"), v("ffcv"),
               v("pillow"), v("python"), C.text(m.hw.get("os")), m.count])
    return sec


def sections(md: Model, maps_dir: Path | None) -> list[Section]:
    hs, cs, ms = md.hs, md.cs, md.ms
    out = [machines_section(ms)]
    for m in ms.values():
        sec = Section(m.label)
        for sub in (matrix(hs, m), variants(hs, m), steady_state(hs, m)):
            sec.add(sub)
        out.append(sec)
    plots = Section("Plots", intro="Loaders at default settings; the synthetic loader appears only as the compute ceiling "
                                   "of the training plots.")
    for name in ("loader_throughput.png", "train_throughput.png", "data_wait.png", "scaling.png"):
        plots.add(Plot(name))
    out += [plots, across(hs, ms), plan_section(hs, cs, ms), per_architecture(hs, ms), transfer(md.recs, hs, ms),
            feature_maps(maps_dir), history(hs, ms), failures(hs, ms), others(cs, ms)]
    return out


def write_report(paths, out: Path, maps_dir: Path | None) -> dict:
    from .render import html_page, markdown

    recs = load(paths)
    md = model(recs)
    secs = sections(md, maps_dir)
    plot_dir = out / "plots"
    write_plots(md.recs, md.hs, md.cs, md.ms, plot_dir)
    (out / "REPORT.md").write_text(markdown(secs, paths, recs.skipped, out))
    (out / "report.html").write_text(html_page(secs, paths, recs.skipped, plot_dir))
    return {"md": out / "REPORT.md", "html": out / "report.html", "plots": plot_dir, "skipped": recs.skipped}


def _when(s) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(s))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def run_table(recs, ms) -> Table:
    """One row per record (the terminal table of a run)."""
    t = Table(["machine", "kind", "loader", "split / arch", "options", "images/s", "steady", "ratio", "top-1", "status"])
    for r in recs:
        if r.get("kind") in ("epoch",):
            continue
        m = r["metrics"]
        ratio = m.get("ceiling_ratio") if r.get("kind") == "loader" else m.get("ratio_to_synthetic")
        t.add([ms[I.machine_id(r)].label[:40], r.get("kind"), C.text(r.get("loader")), C.text(I.slot(r)), I.show_options(I.options(r)),
               C.ips(m.get("images_per_sec")), C.ips(m.get("steady_images_per_sec")), C.ratio(ratio), C.accs(m.get("top1")),
               C.status(r)[:60]])
    return t


def since(paths, start: str) -> tuple[Table | None, list[str]]:
    """(table of the records written at or after `start`, the files that hold them)."""
    t0 = _when(start)
    if t0 is None:
        raise ValueError(f"--since {start!r}: not an ISO time (e.g. 2026-12-02T10:00:00)")
    mine, files = [], []
    for p in paths:
        got = [r for r in load([p], warn=None) if (w := _when(r.get("time"))) is not None and w >= t0]
        if got:
            files.append(str(p))
            mine += got
    return (run_table(mine, machines(mine)) if mine else None), files


def summary(paths) -> Table:
    """The headline rows in one compact table (loader-only, training, accuracy)."""
    md = model(load(paths))
    t = Table(["machine", "kind", "loader", "split / arch", "options", "images/s", "n", "ratio", "top-1", "status"])
    for h in md.hs:
        if h.kind in ("loader", "train", "accuracy", "ceiling") and L.shown(h):
            m = h.metrics
            ratio = m.get("ceiling_ratio") if h.kind == "loader" else m.get("ratio_to_synthetic")
            t.add([md.ms[h.machine].label[:40], h.kind, C.text(h.loader), C.text(h.slot), I.show_options(h.options),
                   C.ips(h.value("images_per_sec")), h.n, C.ratio(ratio), C.accs(m.get("top1")), C.status(h.rec)[:50]])
    return t


__all__ = ["Model", "model", "sections", "since", "summary", "write_report"]
