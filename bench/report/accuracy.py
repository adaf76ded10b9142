"""Accuracy per architecture, transfer learning (frozen / full / scratch) and feature maps."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from . import cells as C
from . import identity as I
from .document import Image, Note, Plot, Section, Table

TRANSFER = ("frozen", "full", "scratch")


# What a run was trained with beside its recipe's name: a sweep sets these per network (a recipe
# sized for one network is rarely right for another), and the table must say so.
TRAINED_WITH = ("res", "batch_size", "lr", "scale_min")


def experiment(r) -> str | None:
    """'small-images', or 'small-images · min_steps=0' where a recipe rule was set otherwise."""
    return " · ".join(str(x) for x in (I.setting(r, "recipe"), *I.rules_changed(r)) if x) or None


def transfer_of(r) -> str | None:
    t = I.setting(r, "transfer")
    return t if t in TRANSFER else None


def run_key(r) -> tuple:
    """The accuracy run an epoch record belongs to (one process may run a whole sweep)."""
    return (r.get("run_id"), I.machine_id(r), r.get("arch"), r.get("loader"), r["dataset"].get("name"),
            transfer_of(r), I.setting(r, "init"))


def epoch_runs(recs) -> dict[tuple, list]:
    """run key → its ok epoch records, in epoch order."""
    runs = defaultdict(list)
    for r in recs:
        if r.get("kind") == "epoch" and r["status"] == "ok" and r["metrics"].get("top1") is not None:
            runs[run_key(r)].append(r)
    for rs in runs.values():
        rs.sort(key=lambda r: r["metrics"].get("epoch", 0))
    return dict(runs)


def per_architecture(hs, ms) -> Section:
    sec = Section("Accuracy per architecture", intro=(
        "Final records of accuracy runs (not transfer runs), the latest per machine, loader, architecture, dataset "
        "and recipe. Train img/s: the run's training throughput; eval img/s: its validation throughput."))
    acc = [h for h in hs if h.kind == "accuracy" and not transfer_of(h.rec)]
    if not acc:
        sec.add(Note("No accuracy records yet: `python -m bench.run --mode accuracy --arch ... --recipe ...`."))
    else:
        t = sec.add(Table(["arch", "dataset", "machine", "loader", "options", "top-1", "top-5", "epochs", "wall time", "train img/s",
                           "eval img/s", "parameters", "recipe", "settings", "runs", "status"]))
        for h in sorted(acc, key=lambda h: (str(h.slot), str(h.rec["dataset"].get("name")), list(ms).index(h.machine), str(h.loader))):
            x = h.metrics
            t.add([h.slot, C.text(h.rec["dataset"].get("name")), ms[h.machine].label, h.loader, I.show_options(h.options), C.accs(x.get("top1")), C.accs(x.get("top5")),
                   C.text(x.get("epochs")), C.secs(x.get("wall_s")), C.ips(x.get("images_per_sec")), C.ips(x.get("eval_images_per_sec")),
                   C.count(x.get("params")), C.text(experiment(h.rec)), C.brief(h.settings, TRAINED_WITH), C.runs(h, C.accs), C.status(h.rec)],
                  "" if h.ok else "fail")
    sec.add(Plot("accuracy_vs_time.png"))
    return sec


def transfer(recs, hs, ms) -> Section:
    sec = Section("Transfer learning", intro=(
        "Pretrained on one dataset, fine-tuned on another with the same budget: the backbone frozen (classifier only), "
        "fully fine-tuned, or trained from scratch. Final top-1 per mode; the curves are top-1 per epoch."))
    fin = [h for h in hs if h.kind == "accuracy" and transfer_of(h.rec)]
    if not fin:
        sec.add(Note("No transfer-learning records yet (records with config.transfer = frozen | full | scratch)."))
        return sec
    t = sec.add(Table(["arch", "dataset", "machine", "mode", "init", "top-1", "top-5", "epochs", "wall time", "status"]))
    for h in sorted(fin, key=lambda h: (str(h.slot), str(h.rec["dataset"].get("name")), TRANSFER.index(transfer_of(h.rec)))):
        x = h.metrics
        t.add([h.slot, C.text(h.rec["dataset"].get("name")), ms[h.machine].label, transfer_of(h.rec), C.text(I.setting(h.rec, "init")),
               C.accs(x.get("top1")), C.accs(x.get("top5")), C.text(x.get("epochs")), C.secs(x.get("wall_s")), C.status(h.rec)],
              "" if h.ok else "fail")
    sec.add(Plot("transfer.png"))
    return sec


def feature_maps(root: Path | None) -> Section:
    """The PNGs `python -m bench.visualize` wrote under <root>/<arch>/: input, filters, activations."""
    sec = Section("Feature maps", intro=(
        "First-layer filters and activation grids of trained networks (`python -m bench.visualize --checkpoint ... "
        "--image ... --out results/feature_maps/<arch>`), one subsection per architecture."))
    archs = sorted(p for p in root.iterdir() if p.is_dir()) if root and root.is_dir() else []
    found = False
    for d in archs:
        pngs = sorted(d.glob("input*.png")) + sorted(d.glob("filters-*.png")) + sorted(d.glob("activations-*.png"))
        if pngs:
            found = True
            sub = sec.add(Section(d.name, level=3))
            for p in pngs:
                sub.add(Image(p, f"{d.name}: {p.stem}"))
    if not found:
        where = f"{root.parent.name}/{root.name}" if root else "the feature-maps folder"  # no machine path in a committed file
        sec.add(Note(f"No feature maps yet (none under {where}/)."))
    return sec
