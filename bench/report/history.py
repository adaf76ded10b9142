"""Runs over time: latest against previous per configuration (regressions), failures, and the
kinds the other sections do not chart."""
from __future__ import annotations

from . import cells as C
from . import identity as I
from . import lookups as L
from .document import Note, Section, Table
from .headlines import VERSIONS, metric_of

THRESHOLD = 0.10
NO_HISTORY = ("epoch",)  # per-epoch rows belong to an accuracy run, not a configuration of their own


def change(old: dict, new: dict) -> tuple[str, str]:
    """(change, flag) of the headline metric from `old` to `new` (same configuration)."""
    name = metric_of(new)
    a, b = old["metrics"].get(name), new["metrics"].get(name)
    if new["status"] != "ok":
        return new["status"], "REGRESSION" if old["status"] == "ok" else "still failing"
    if old["status"] != "ok" or not a or b is None:
        return C.DASH, ""
    return f"{(b - a) / a:+.1%}", "REGRESSION" if b < a * (1 - THRESHOLD) else ""


def _notes(old: dict, new: dict) -> str:
    vers = I.differs({k: old["hardware"].get(k) for k in VERSIONS}, {k: new["hardware"].get(k) for k in VERSIONS})
    commit = I.differs({"commit": old["git"].get("commit")}, {"commit": new["git"].get("commit")})
    return "; ".join(vers + commit) or C.DASH


def history(hs, ms) -> Section:
    sec = Section("Latest vs previous", intro=(
        f"Per machine and configuration (same options and settings), the latest run against the one before it. "
        f"REGRESSION: more than {THRESHOLD:.0%} below the previous value of the headline metric (images/s; top-1 for "
        "accuracy runs), or failed after an ok run. Where a workload's settings changed, the row says how instead."))
    t = sec.add(Table(["machine", "kind", "workload", "options", "metric", "previous", "latest", "change", "flag", "notes"]))
    order = list(ms)
    for h in sorted(hs, key=lambda h: (order.index(h.machine), I.dumps(I.workload(h.rec)), I.dumps(h.options))):
        if h.kind in NO_HISTORY or not L.shown(h):
            continue
        name = metric_of(h.rec)
        fmt = C.accs if name == "top1" else C.ips
        wl = " / ".join(str(x) for x in I.workload(h.rec)[1:] if x) or C.DASH
        if not any(r["metrics"].get(name) is not None for r in h.runs + h.older[-1:]):
            continue  # nothing to compare (a kind without this metric)
        if len(h.runs) >= 2:
            old, new = h.runs[-2], h.runs[-1]
            ch, flag = change(old, new)
            t.add([ms[h.machine].label, h.kind, wl, I.show_options(h.options), name, fmt(old["metrics"].get(name)),
                   fmt(new["metrics"].get(name)), ch, flag, _notes(old, new)], "regress" if flag == "REGRESSION" else "")
        elif h.older:
            prev = h.older[-1]
            t.add([ms[h.machine].label, h.kind, wl, I.show_options(h.options), name, fmt(prev["metrics"].get(name)),
                   fmt(h.value()), C.DASH, "not compared", "settings changed: " + "; ".join(I.differs(I.settings(prev), h.settings))])
    if not t.rows:
        sec.blocks = [Note("No configuration has been run twice yet.")]
    return sec


def failures(hs, ms) -> Section:
    sec = Section("Errors and unavailable", intro="Configurations whose latest run did not succeed.")
    bad = [h for h in hs if not h.ok]
    if not bad:
        sec.add(Note("None."))
        return sec
    t = sec.add(Table(["machine", "kind", "loader", "split / arch", "options", "time", "status", "error"]))
    for h in sorted(bad, key=lambda h: (list(ms).index(h.machine), h.kind, str(h.loader), str(h.slot))):
        t.add([ms[h.machine].label, h.kind, C.text(h.loader), C.text(h.slot), I.show_options(h.options), C.text(h.rec.get("time")),
               h.rec["status"], (h.rec.get("error") or C.DASH)[:200]], "fail")
    return sec


CHARTED = ("loader", "train", "eval", "accuracy", "epoch", "ceiling", "scaling")


def others(cs, ms) -> Section:
    sec = Section("Other records", intro="Kinds the sections above do not chart (benchmarks, tuning, GPU checks): the latest "
                                         "run of each configuration, its first numeric metrics.")
    rest = [h for h in cs if h.kind not in CHARTED]
    if not rest:
        sec.add(Note("None."))
        return sec
    t = sec.add(Table(["kind", "what", "machine", "metrics", "runs", "status"]))
    for h in sorted(rest, key=lambda h: (h.kind, list(ms).index(h.machine), str(h.rec["config"].get("benchmark") or h.loader))):
        nums = [(k, v) for k, v in h.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)][:5]
        what = h.rec["config"].get("benchmark") or " ".join(str(x) for x in (h.loader, h.rec.get("variant"), h.rec.get("arch")) if x)
        t.add([h.kind, C.text(what), ms[h.machine].label, ", ".join(f"{k} {v:.4g}" for k, v in nums) or C.DASH, f"n={h.n}",
               C.status(h.rec)], "" if h.ok else "fail")
    return sec
