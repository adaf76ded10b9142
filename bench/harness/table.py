"""The table `bench.run` prints at the end: one row per record of this run."""
from __future__ import annotations

import loaders

SHOWN = ("loader", "train", "eval", "accuracy", "ceiling", "tune")


def fmt_table(records: list[dict]) -> str:
    rows = [r for r in records if r["kind"] in SHOWN]
    if not rows:
        return ""
    best: dict = {}
    for r in rows:
        if loaders.role(r.get("loader")) != "ceiling":  # the ceiling is a reference, not a contender
            best[r["kind"]] = max(best.get(r["kind"], 0), r["metrics"].get("images_per_sec") or 0)
    head = f"{'mode':<9}{'loader':<17}{'split/arch':<12}{'images/s':>12}{'p10-p90':>22}{'vs best':>9}{'/ceiling':>9}{'top1':>8}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        m = r["metrics"]
        ips = m.get("images_per_sec") or 0
        spread = f"{m['p10']:.0f}-{m['p90']:.0f}" if "p10" in m else ""
        contender = loaders.role(r.get("loader")) != "ceiling"
        ratio = f"{ips / best[r['kind']]:.2f}" if best.get(r["kind"]) and ips and contender else ""
        top1 = f"{m['top1']:.3f}" if m.get("top1") is not None else ""
        ceil = f"{m['ceiling_ratio']:.2f}" if m.get("ceiling_ratio") else ""
        what = r.get("arch") or r.get("variant") or ""
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {(r.get('error') or '')[:60]}"
        lines.append(f"{r['kind']:<9}{(r.get('loader') or '-'):<17}{what:<12}{ips:>12.1f}{spread:>22}{ratio:>9}{ceil:>9}{top1:>8}  {status}")
    return "\n".join(lines)
