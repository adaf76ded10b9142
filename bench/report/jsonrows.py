"""`python -m bench.report --json`: the headline rows as JSON lines (schema in the README).

Every row: machine (label), machine_id, kind (loader | train | eval | accuracy | plan), role
(loader | ceiling), loader, split (loader/eval) or arch (train/eval/accuracy/plan), dataset,
options ({} for the defaults), settings (dotted keys: the rest of what identifies the
configuration; never a per-run counter), images_per_sec, n (ok runs of the configuration),
spread ([min, max] of the runs at the latest run's commit, null below 2), commit, time, status.
loader rows add ceiling_ratio, steady_images_per_sec, stall_s; train rows ratio_to_synthetic,
synthetic_images_per_sec, data_wait_frac, steady_images_per_sec, stall_s; accuracy rows top1,
top5 (fractions, as recorded), epochs, wall_s, eval_images_per_sec, params, transfer; plan rows
synthetic_images_per_sec, target_images_per_sec, workers_needed (null: not reached or not
measured), workers_needed_upper_bound, gpus_per_host, cores, points ({workers: img/s}).
A metric a record lacks is null ("not measured"), never estimated.
"""
from __future__ import annotations

from . import lookups as L
from .accuracy import transfer_of
from .plan import rows as plan_rows

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
            "points": {str(w): v for w, v in r.points.items()}}


def json_rows(hs, cs, ms) -> list[dict]:
    rows = [headline_row(h, hs, ms) for h in hs if h.kind in KINDS and (h.role != "ceiling" or h.kind == "train")]
    order = list(ms)
    rows.sort(key=lambda r: (order.index(r["machine_id"]), KINDS.index(r["kind"]), str(r.get("arch")), str(r.get("split")),
                             str(r["loader"]), str(sorted(r["options"].items()))))
    return rows + [plan_row(r, hs, ms) for r in plan_rows(hs, cs, ms)]
