"""`python -m bench.report --compare A B`: two record sets, configuration by configuration.

A and B are each a records file, a machine (fingerprint id, its prefix, or part of its label)
within the records read, or a git commit (its committed results/*.jsonl). The headline of
each configuration in A is put against the same configuration in B (B is the newer side):
REGRESSION when B is more than 10% below A in the headline metric with the same settings, or
B failed where A succeeded. Comparing two machines, the settings each machine resolves for
itself (device, workers, ...) may differ; comparing two versions on the same machine, the
machine is part of the match.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..results import REPO, Records, load, parse
from . import cells as C
from . import identity as I
from . import lookups as L
from .document import Table
from .headlines import headlines, machines, metric_of
from .history import THRESHOLD

KINDS = ("loader", "train", "eval", "accuracy", "ceiling", "scaling")


class CompareError(ValueError):
    """A --compare argument that names nothing: the message says what was tried."""


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def at_commit(rev: str) -> Records | None:
    commit = (_git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") or "").strip()
    if not commit:
        return None
    out = Records()
    for path in (_git("ls-tree", "--name-only", commit, "results/") or "").split():
        if path.endswith(".jsonl"):
            got = parse(_git("show", f"{commit}:{path}") or "", f"{rev}:{path}")
            out += got
            out.skipped += got.skipped
    return out


def resolve(spec: str, pool: Records) -> tuple[str, Records]:
    """(label, records) for one side of --compare."""
    if Path(spec).is_file():
        return spec, load([spec])
    ms = machines(pool)
    hits = [m for m in ms.values() if m.id == spec or m.id.startswith(spec) or spec.lower() in m.label.lower()]
    if len(hits) == 1:
        return hits[0].label, Records(r for r in pool if I.machine_id(r) == hits[0].id)
    if len(hits) > 1:
        raise CompareError(f"--compare {spec!r} matches {len(hits)} machines ({'; '.join(m.label for m in hits)}): give more of the id")
    recs = at_commit(spec)
    if recs is not None:
        return f"commit {spec}", recs
    raise CompareError(f"--compare {spec!r} is neither a records file, a machine id or label in the records, nor a git commit")


def _key(h, by_machine: bool) -> str:
    return I.dumps([h.machine if by_machine else None, I.workload(h.rec), h.options])


def _row(a, b, by_machine: bool, ms) -> tuple[list, str]:
    name = metric_of(b.rec)
    fmt = C.accs if name == "top1" else C.ips
    sa, sb = (a.settings, b.settings) if by_machine else (I.portable(a.settings), I.portable(b.settings))
    diff = I.differs(sa, sb)
    va, vb = a.value(), b.value()
    change = f"{(vb - va) / va:+.1%}" if va and vb is not None else (b.rec["status"] if not b.ok else C.DASH)
    flag = ""
    if a.ok and not b.ok:
        flag = "REGRESSION"
    elif va and vb is not None and vb < va * (1 - THRESHOLD):
        flag = "REGRESSION" if not diff else "lower, settings differ"
    wl = " / ".join(str(x) for x in I.workload(b.rec)[1:] if x)
    where = ms[b.machine].label if by_machine else f"{ms[a.machine].label} → {ms[b.machine].label}"
    cells = [b.kind, wl, I.show_options(b.options), where, name, fmt(va) if a.ok else a.rec["status"],
             fmt(vb) if b.ok else b.rec["status"], change, flag, "; ".join(diff) or "same"]
    return cells, "regress" if flag == "REGRESSION" else ""


def compare(a_recs, b_recs) -> tuple[Table, dict]:
    """The comparison table and counts {compared, regressions, only_a, only_b}."""
    ha = [h for h in headlines(a_recs, KINDS) if L.shown(h)]
    hb = [h for h in headlines(b_recs, KINDS) if L.shown(h)]
    by_machine = bool({h.machine for h in ha} & {h.machine for h in hb})
    ms = machines(list(a_recs) + list(b_recs))
    A = {_key(h, by_machine): h for h in ha}
    B = {_key(h, by_machine): h for h in hb}
    t = Table(["kind", "workload", "options", "machine", "metric", "A", "B", "change", "flag", "settings that differ"])
    for k in sorted(set(A) & set(B)):
        t.add(*_row(A[k], B[k], by_machine, ms))
    counts = {"compared": len(t.rows), "regressions": sum(1 for _, cls in t.rows if cls == "regress"),
              "only_a": len(set(A) - set(B)), "only_b": len(set(B) - set(A))}
    return t, counts
