"""Planning: how many loader workers (cores) keep a GPU at ≥ 95% of its synthetic rate, and
how many such GPUs one host's cores could feed — from measured scaling curves only."""
from __future__ import annotations

from dataclasses import dataclass

from . import cells as C
from . import identity as I
from .document import Note, Section, Table

TARGET = 0.95
CURVE_KEYS = ("data", "batch_size", "res", "dataset.fingerprint")  # what a curve point must share with the GPU's run

MODEL = (
    "Model: a GPU trains at its synthetic rate S (the ceiling-role loader: no input work) when data never waits; a "
    f"loader with w workers delivers L(w) images/s loader-only; training stays at ≥ {TARGET:.0%} of S when "
    f"L(w) ≥ {TARGET:.0%}·S. Workers needed = the smallest measured w with L(w) ≥ {TARGET:.0%}·S; GPUs per host = "
    "host cores ÷ workers needed, rounded down. Assumptions: one worker uses one core; loading overlaps compute "
    "completely; the rate measured loader-only holds while the GPU trains (a loader that decodes on the GPU shares it "
    "with training, so its figure is an upper bound); the loaders of several GPUs scale linearly on one host (no "
    "shared limit from memory bandwidth, storage or page cache); the training process's own thread is not counted; "
    "same dataset, batch size and resolution as measured. Points come from `--mode scaling` records (and loader-only "
    "records, each one point at its worker count); nothing is extrapolated: where no measured point reaches the "
    "target, the row says so. Where this loader's training run was measured on the machine, its ratio to synthetic "
    "stands beside the plan: it is the figure to trust. A plan met loader-only but missed in training means the "
    "assumptions above failed for that run (stalls at epoch starts, cores shared with the training process), not "
    "that more workers are needed; the steady-state table tells stalls apart.")


@dataclass
class PlanRow:
    machine: str
    arch: str
    options: dict
    loader: str
    synthetic: float
    target: float
    points: dict  # workers → images/s (measured)
    cores: int
    needed: int | None = None
    trained: object = None  # this loader's default training headline with the same options (a Headline), if measured

    @property
    def gpus(self) -> int | None:
        return self.cores // self.needed if self.needed else None

    @property
    def lower_bound_only(self) -> bool:
        """Only points at or above `needed` were measured: fewer workers may do."""
        return self.needed is not None and min(self.points) == self.needed and self.needed > 1


def curve(cs, machine: str, loader: str, settings: dict) -> dict:
    """workers → the latest ok images/s over the configurations `cs`: scaling points and
    loader-only records (train split) of this machine and loader sharing CURVE_KEYS with
    `settings`."""
    pts = {}
    for h in sorted(cs, key=lambda h: str(h.rec.get("time"))):
        if (h.kind in ("scaling", "loader") and h.slot == "train" and h.machine == machine and h.loader == loader
                and not h.options and h.ok and h.value()
                and all(I.get(h.settings, k) == I.get(settings, k) for k in CURVE_KEYS)):
            w = h.metrics.get("workers", I.get(h.settings, "workers"))
            if isinstance(w, int):
                pts[w] = h.value()
    return dict(sorted(pts.items()))


def rows(hs, cs, ms) -> list[PlanRow]:
    out = []
    for syn in sorted((h for h in hs if h.kind == "train" and h.role == "ceiling" and h.ok and h.value()),
                      key=lambda h: (h.machine, str(h.slot), I.dumps(h.options))):
        m = ms[syn.machine]
        if not m.gpu:
            continue
        loaders_here = sorted({h.loader for h in hs if h.machine == m.id and h.role == "loader" and h.ok
                               and h.kind in ("loader", "train", "scaling")})
        for name in loaders_here:
            pts = curve(cs, m.id, name, syn.settings)
            target = round(TARGET * syn.value(), 2)
            row = PlanRow(m.id, syn.slot, syn.options, name, syn.value(), target, pts, int(m.hw.get("cores") or 0))
            row.needed = next((w for w, v in pts.items() if v >= target), None)
            row.trained = next((h for h in hs if h.kind == "train" and h.machine == m.id and h.slot == syn.slot
                                and h.loader == name and h.options == syn.options and h.ok and h.value()), None)
            out.append(row)
    return out


def _verdict(r: PlanRow) -> tuple[str, str]:
    if not r.points:
        return (f"not measured: run `python -m bench.run --mode scaling --loader {r.loader}` on this machine", C.DASH)
    if r.needed is None:
        best_w = max(r.points, key=r.points.get)
        return (f"not reached: best {C.ips(r.points[best_w])} img/s at {best_w} workers = "
                f"{r.points[best_w] / r.synthetic:.0%} of synthetic", "0 (a GPU would wait for data)")
    need = f"≤ {r.needed} (no point below {r.needed} measured)" if r.lower_bound_only else str(r.needed)
    gpus = f"≥ {r.gpus}" if r.lower_bound_only else str(r.gpus)
    return need, gpus


def training_ratio(r: PlanRow) -> float | None:
    """The measured training rate of this loader ÷ the synthetic one (None: not measured); the
    ratio recorded with the run (synthetic measured in the same invocation) when it has one."""
    if not r.trained:
        return None
    return r.trained.metrics.get("ratio_to_synthetic") or r.trained.value() / r.synthetic


def _check(r: PlanRow) -> tuple[str, bool]:
    """(the measured-training cell, whether it contradicts a plan that was met loader-only)."""
    ratio = training_ratio(r)
    if ratio is None:
        return C.NOT_MEASURED, False
    wait = r.trained.metrics.get("data_wait_frac")
    w = I.get(r.trained.settings, "workers")
    cell = f"{ratio:.2f}× synthetic" + (f", {wait:.0%} data wait" if wait is not None else "") + (f" ({w} workers)" if w else "")
    missed = r.needed is not None and ratio < TARGET
    return cell + (" — below the target: see the steady-state table" if missed else ""), missed


def section(hs, cs, ms) -> Section:
    sec = Section("Planning: cores per GPU", intro=MODEL)
    rs = rows(hs, cs, ms)
    if not rs:
        sec.add(Note("No GPU machine has synthetic training records yet, so there is nothing to plan from: run "
                     "`python -m bench.run --mode train --loader synthetic,<loaders>` and `--mode scaling` on one."))
        return sec
    t = sec.add(Table(["machine", "arch", "options", "synthetic img/s", f"target ({TARGET:.0%})", "loader",
                       "measured points (workers: img/s)", "workers needed", "GPUs per host", "measured in training"]))
    for r in rs:
        need, gpus = _verdict(r)
        check, missed = _check(r)
        pts = ", ".join(f"{w}: {C.ips(v)}" for w, v in r.points.items()) or C.NOT_MEASURED
        t.add([ms[r.machine].label, r.arch, I.show_options(r.options), C.ips(r.synthetic), C.ips(r.target), r.loader,
               pts, need, gpus + (f" of {r.cores} cores" if r.gpus else ""), check], "fail" if missed or not r.needed else "")
    return sec
