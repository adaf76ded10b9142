"""`python -m bench.report --json`: the headline rows as JSON lines. The schema is the README's
table under "python -m bench.report" (tests/test_report.py checks every key against it): keep
the two in step. A metric a record lacks is null ("not measured"), never estimated."""
from __future__ import annotations

from . import lookups as L
from .accuracy import transfer_of
from .plan import rows as plan_rows
from .plan import training_ratio

KINDS = ("loader", "train", "eval", "accuracy")


def _base(h, ms) -> dict:
    m = h.metrics if h.ok else {}
    row = {"machine": ms[h.machine].label, "machine_id": h.machine, "kind": h.kind, "role": h.role, "loader": h.loader}
    if h.kind in ("loader", "eval"):
        row["split"] = h.slot if h.kind == "loader" else "val"
    if h.kind != "loader":
        row["arch"] = h.slot
    sp = h.spread("images_per_sec")
    row.update(dataset=h.rec["dataset"].get("name"), options=h.options, settings=h.settings,
               images_per_sec=m.get("images_per_sec"), n=h.n, spread=list(sp) if sp else None,
               commit=h.rec["git"].get("commit"), time=h.rec.get("time"), status=h.rec["status"])
    return row


def headline_row(h, hs, ms) -> dict:
    row, m = _base(h, ms), (h.metrics if h.ok else {})
    steady = {"steady_images_per_sec": m.get("steady_images_per_sec"), "stall_s": m.get("stall_s")}
    if h.kind == "loader":
        row.update(ceiling_ratio=L.ceiling_ratio(h, hs)[0], **steady)
    elif h.kind == "train":
        row.update(ratio_to_synthetic=L.ratio_to_synthetic(h, hs), synthetic_images_per_sec=L.synthetic_rate(h, hs) if h.ok else None,
                   data_wait_frac=m.get("data_wait_frac"), **steady)
    elif h.kind == "accuracy":
        sp = h.spread("top1")
        row.update(top1=m.get("top1"), top5=m.get("top5"), epochs=m.get("epochs"), wall_s=m.get("wall_s"),
                   eval_images_per_sec=m.get("eval_images_per_sec"), params=m.get("params"), transfer=transfer_of(h.rec),
                   spread=list(sp) if sp else None)
    return row


def plan_row(r, hs, ms) -> dict:
    syn = next(h for h in hs if h.kind == "train" and h.role == "ceiling" and h.machine == r.machine and h.slot == r.arch
               and h.options == r.options and h.ok)
    rate = r.points.get(r.needed) if r.needed else (max(r.points.values()) if r.points else None)
    return {"machine": ms[r.machine].label, "machine_id": r.machine, "kind": "plan", "role": "loader", "loader": r.loader,
            "arch": r.arch, "dataset": syn.rec["dataset"].get("name"), "options": r.options, "settings": syn.settings,
            "images_per_sec": rate, "n": len(r.points), "spread": None, "commit": syn.rec["git"].get("commit"),
            "time": syn.rec.get("time"), "status": "ok" if r.needed else "not reached" if r.points else "not measured",
            "synthetic_images_per_sec": r.synthetic, "target_images_per_sec": r.target, "workers_needed": r.needed,
            "workers_needed_upper_bound": r.lower_bound_only, "gpus_per_host": r.gpus, "cores": r.cores,
            "points": {str(w): v for w, v in r.points.items()},
            "training_ratio_to_synthetic": training_ratio(r),
            "training_data_wait_frac": r.trained.metrics.get("data_wait_frac") if r.trained else None}


def json_rows(hs, cs, ms) -> list[dict]:
    rows = [headline_row(h, hs, ms) for h in hs if h.kind in KINDS and L.shown(h)]
    order = list(ms)
    rows.sort(key=lambda r: (order.index(r["machine_id"]), KINDS.index(r["kind"]), str(r.get("arch")), str(r.get("split")),
                             str(r["loader"]), str(sorted(r["options"].items()))))
    return rows + [plan_row(r, hs, ms) for r in plan_rows(hs, cs, ms)]
