"""The table `bench.run` prints at the end: one row per record of this run."""
from __future__ import annotations

import loaders

SHOWN = ("loader", "train", "eval", "accuracy", "ceiling", "tune", "scaling")


def fmt_table(records: list[dict]) -> str:
    rows = [r for r in records if r["kind"] in SHOWN]
    if not rows:
        return ""
    best: dict = {}
    for r in rows:
        if loaders.role(r.get("loader")) != "ceiling":  # the ceiling is a reference, not a contender
            best[r["kind"]] = max(best.get(r["kind"], 0), r["metrics"].get("images_per_sec") or 0)
    head = (f"{'mode':<9}{'loader':<17}{'split/arch':<12}{'images/s':>11}{'steady':>11}{'p10-p90':>18}{'vs best':>8}"
            f"{'/ceiling':>9}{'/synth':>8}{'wait':>6}{'top1':>7}  status")
    lines = [head, "-" * len(head)]
    for r in rows:
        m = r["metrics"]
        ips = m.get("images_per_sec") or 0
        spread = f"{m['p10']:.0f}-{m['p90']:.0f}" if "p10" in m else ""
        steady = f"{m['steady_images_per_sec']:.1f}" if m.get("steady_images_per_sec") else ""
        synth = f"{m['ratio_to_synthetic']:.2f}" if m.get("ratio_to_synthetic") else ""
        wait = f"{m['data_wait_frac']:.0%}" if r["kind"] == "train" and m.get("data_wait_frac") is not None else ""
        contender = loaders.role(r.get("loader")) != "ceiling"
        ratio = f"{ips / best[r['kind']]:.2f}" if best.get(r["kind"]) and ips and contender else ""
        top1 = f"{m['top1']:.3f}" if m.get("top1") is not None else ""
        ceil = f"{m['ceiling_ratio']:.2f}" if m.get("ceiling_ratio") else ""
        what = r.get("arch") or r.get("variant") or ""
        if r["kind"] == "scaling":
            what = f"{what} w{m.get('workers')}"
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {(r.get('error') or '')[:60]}"
        lines.append(f"{r['kind']:<9}{(r.get('loader') or '-'):<17}{what:<12}{ips:>11.1f}{steady:>11}{spread:>18}{ratio:>8}{ceil:>9}"
                     f"{synth:>8}{wait:>6}{top1:>7}  {status}")
    return "\n".join(lines)
