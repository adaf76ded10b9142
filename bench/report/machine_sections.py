"""Per machine: the matrix of loaders at default settings, and steady state against stalls."""
from __future__ import annotations

from collections import defaultdict

from . import cells as C
from . import identity as I
from . import lookups as L
from .document import Note, Section, Table
from .headlines import Headline

ACC_DATA = lambda h: h.rec["dataset"].get("name")  # noqa: E731


def defaults_on(hs, machine: str, kinds) -> list[Headline]:
    """Default-option headlines of a machine, the latest per (kind, loader, slot); of accuracy
    runs the latest that follows its recipe's rules (a `--min-steps 0` ablation keeps its own row
    in the accuracy table, not the matrix cell)."""
    out = {}
    rank = lambda h: (not I.rules_changed(h.rec), str(h.rec.get("time")))  # noqa: E731
    for h in hs:
        if h.machine == machine and h.kind in kinds and not h.options:
            key = (h.kind, h.loader, h.slot, ACC_DATA(h) if h.kind == "accuracy" else None)
            if key not in out or rank(h) >= rank(out[key]):
                out[key] = h
    return list(out.values())


def value_cell(h: Headline | None) -> str:
    if h is None:
        return C.DASH
    if not h.ok:
        return h.rec["status"]
    v = C.ips(h.value())
    return v if h.n < 2 else f"{v} ({C.runs(h)})"


def _train_cell(h, hs) -> str:
    if h is None or not h.ok:
        return value_cell(h)
    r = L.ratio_to_synthetic(h, hs)
    wait = h.metrics.get("data_wait_frac")
    extra = ", ".join(x for x in (f"{C.ratio(r)} synthetic" if r is not None else "", f"{C.pct(wait)} data wait" if wait is not None else "") if x)
    return f"{value_cell(h)} ({extra})" if extra else value_cell(h)


def _columns(hs, mine):
    """The matrix's column specs: (header, cell function of a loader name)."""
    pick = lambda kind, slot, loader: next((h for h in mine if h.kind == kind and h.slot == slot and h.loader == loader), None)  # noqa: E731
    cols = [("loader-only train img/s", lambda n: value_cell(pick("loader", "train", n))),
            ("× decode ceiling", lambda n: _ceiling_cell(pick("loader", "train", n), hs)),
            ("loader-only val img/s", lambda n: value_cell(pick("loader", "val", n)))]
    for arch in sorted({h.slot for h in mine if h.kind == "train"}, key=str):
        syn = next((h for h in mine if h.kind == "train" and h.slot == arch and h.role == "ceiling" and h.ok), None)
        head = f"{arch} training img/s" + (f" (synthetic {C.ips(syn.value())})" if syn else " (synthetic not measured)")
        cols.append((head, lambda n, a=arch: _train_cell(pick("train", a, n), hs)))
    for arch, data in compared_accuracy(mine):
        cell = lambda n, a=arch, d=data: C.accs(next((h.value() for h in mine if h.kind == "accuracy" and h.slot == a  # noqa: E731
                                                       and ACC_DATA(h) == d and h.loader == n), None))
        cols.append((f"top-1 {arch} ({data})", cell))
    return cols


def compared_accuracy(mine) -> list[tuple]:
    """The (arch, dataset) accuracy workloads that two or more loaders ran: the matrix compares
    loaders, so a workload one loader ran (an architecture sweep) is the per-architecture
    table's, not a column here."""
    loaders_of = defaultdict(set)
    for h in mine:
        if h.kind == "accuracy":
            loaders_of[(h.slot, ACC_DATA(h))].add(h.loader)
    return sorted((w for w, ls in loaders_of.items() if len(ls) >= 2), key=str)


def _same_pipeline(mine) -> list[str]:
    """Loaders whose loader-only runs here had identical settings, backend's included (a GPU
    backend that fell back to its CPU pipeline on a machine without one): one pipeline measured
    under two names."""
    groups = defaultdict(list)
    for h in mine:
        if h.kind == "loader" and h.slot == "train" and h.ok:
            groups[I.dumps(h.settings)].append(h)
    out = []
    for hs_ in groups.values():
        if len(hs_) > 1:
            backend = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in hs_[0].settings.items() if k.startswith("backend."))
            out.append(f"{' and '.join(sorted(h.loader for h in hs_))} ran with identical settings on this machine "
                       f"({backend}): one pipeline measured under two names, not two loaders.")
    return out


def _ceiling_cell(h, hs) -> str:
    r, computed = L.ceiling_ratio(h, hs) if h else (None, False)
    return C.ratio(r) + ("*" if computed else "") if r is not None else C.DASH


def matrix(hs, m) -> Section:
    mine = [h for h in defaults_on(hs, m.id, ("loader", "train", "accuracy")) if L.shown(h)]
    sec = Section(f"{m.label}: loaders at default settings", level=3, intro=(
        "One row per loader (default options; variants are in the next table); each cell is the latest run of its "
        "configuration, with the number of runs behind it and their min–max at the same commit where there are several. "
        "Training cells: images/s, ratio to the compute ceiling (the synthetic loader: no input work) and the share of "
        "step time spent waiting for data. × decode ceiling: loader-only images/s ÷ this machine's decode ceiling "
        "(* computed here from the ceiling record, otherwise recorded with the run)."))
    names = sorted({h.loader for h in mine if h.role == "loader"}, key=str)
    if not names:
        sec.add(Note("No loader records yet on this machine."))
        return sec
    cols = _columns(hs, mine)
    t = sec.add(Table(["loader"] + [c[0] for c in cols] + ["status"]))
    for n in names:
        bad = defaultdict(list)
        for h in mine:
            if h.loader == n and not h.ok:
                bad[h.rec["status"]].append(h.kind)
        note = "; ".join(f"{s} ({', '.join(sorted(set(k)))}): see Errors" for s, k in bad.items()) or "ok"
        t.add([n] + [f(n) for _, f in cols] + [note], "fail" if bad and all(not h.ok for h in mine if h.loader == n) else "")
    shown_acc = compared_accuracy(mine)
    alone = sorted({(h.slot, ACC_DATA(h)) for h in mine if h.kind == "accuracy"} - set(shown_acc), key=str)
    if alone:
        sec.add(Note(f"Top-1 of {len(alone)} accuracy workload(s) run with one loader only "
                     f"({', '.join(f'{a} on {d}' for a, d in alone)}): in the per-architecture table."))
    for note in _same_pipeline(mine) + _settings_notes([h for h in mine if h.kind != "accuracy" or (h.slot, ACC_DATA(h)) in shown_acc]):
        sec.add(Note(note))
    return sec


def _settings_notes(mine) -> list[str]:
    """What the cells were measured with, per kind: once if they agree, per configuration if not."""
    out = []
    for kind, keys in (("loader", ("data", "batch_size", "res", "workers", "steps")),
                       ("train", ("data", "batch_size", "res", "workers", "steps", "device")),
                       ("accuracy", ("recipe", "batch_size", "res", "epochs"))):
        groups = defaultdict(list)
        for h in mine:
            if h.kind == kind and h.ok:
                groups[C.brief(h.settings, keys)].append(f"{h.loader} {h.slot or ''}".strip())
        if len(groups) == 1:
            out.append(f"{kind} settings: {next(iter(groups))}.")
        elif groups:
            out.append(f"{kind} settings differ: " + "; ".join(f"{', '.join(sorted(v))}: {k}" for k, v in groups.items()) + ".")
    return out


STEADY = ("steady_images_per_sec", "stall_s", "epoch_start_wait_s")


def steady_state(hs, m) -> Section:
    """Mean rate against the steady-state rate and the time lost to stalls."""
    sec = Section(f"{m.label}: steady state and stalls", level=3, intro=(
        "Mean: images/s over the measured window. Steady: the rate of the median step (what the loader sustains). "
        "Stalls: time lost to steps far slower than the median, and what the first batch of each epoch inside the "
        "window waited. Low mean with a steady rate near the ceiling means the loader stalls (often at epoch starts), "
        "not that it is slow. p10–p90 are over windows of several steps."))
    rows = [h for h in defaults_on(hs, m.id, ("loader", "train", "eval")) if h.ok and (h.role == "loader" or h.kind == "train")]
    have = [h for h in rows if any(k in h.metrics for k in STEADY)]
    if have:
        t = sec.add(Table(["kind", "loader", "split / arch", "mean img/s", "steady img/s", "stall time", "stall steps",
                           "epoch starts", "epoch-start wait", "p10–p90 img/s", "window"]))
        for h in sorted(have, key=lambda h: (h.kind, str(h.slot), str(h.loader))):
            x = h.metrics
            band = f"{C.ips(x.get('p10'))}–{C.ips(x.get('p90'))}" if x.get("window_steps") else C.NOT_MEASURED
            t.add([h.kind, h.loader, C.text(h.slot), C.ips(x.get("images_per_sec")), C.ips(x.get("steady_images_per_sec")),
                   C.secs(x.get("stall_s")), C.text(x.get("stall_steps")), C.text(x.get("epoch_starts")), C.secs(x.get("epoch_start_wait_s")),
                   band, f"{x.get('steps', C.DASH)} steps" + (f" (windows of {x['window_steps']})" if x.get("window_steps") else "")])
    old_train = [h for h in rows if h not in have and h.kind == "train" and h.role == "loader" and h.metrics.get("step_p50")]
    if old_train:
        sec.add(Note("Training records from before these metrics keep the rate of their median single step "
                     "(step_p50). A training step includes its compute, so unlike a loader-only step its median is a "
                     "rate the run sustained between stalls: a mean far below it, with the median near synthetic's, "
                     "means the loader stalls rather than that it is slow."))
        t = sec.add(Table(["loader", "arch", "mean img/s", "median step img/s", "synthetic mean img/s",
                           "median step ÷ synthetic", "data wait", "window"]))
        for h in sorted(old_train, key=lambda h: (str(h.slot), str(h.loader))):
            syn = L.synthetic_rate(h, hs)
            x = h.metrics
            t.add([h.loader, C.text(h.slot), C.ips(h.value()), C.ips(x["step_p50"]), C.ips(syn),
                   C.ratio(x["step_p50"] / syn) if syn else C.NOT_MEASURED, C.pct(x.get("data_wait_frac")),
                   f"{x.get('steps', C.DASH)} steps"])
    missing = sorted(f"{h.kind} {h.loader} {h.slot or ''}".strip() for h in rows if h not in have and h not in old_train)
    if missing:
        which = ", ".join(missing) if len(missing) <= 8 else f"{len(missing)} configurations ({', '.join(missing[:3])}, …)"
        sec.add(Note(f"Steady-state rate and stall time {C.NOT_MEASURED} for {which} (their records predate "
                     "these metrics; their per-step percentiles are kept in the records as step_p10/50/90 and not shown: a "
                     "prefetched batch arrives in microseconds, so they are no throughput)."))
    return sec
