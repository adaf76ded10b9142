"""bench/gpu_check.sh's closing summary: tables of what its records measured, then one
`gpu_check` record with every step's outcome (steps come tab-separated in $STEPS_TSV).

    STEPS_TSV=... python -m bench.gpu.check_summary REC OUT SMOKE BUDGET WALL

Each loader/train row says how many epoch starts fell inside its warm-up + measured window
(`starts`): 0 on the steady-state set, several on the deliberately small one, so the two are
never read as the same kind of number.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _cfg(r: dict, k: str):
    return (r.get("config") or {}).get(k)


def epoch_starts(r: dict) -> int | None:
    """Epoch boundaries crossed by warm-up + measured steps (batches drawn past the first epoch)."""
    split = r.get("variant") if r.get("variant") in ("train", "val") else "train"
    n = (r.get("dataset") or {}).get(split)
    bs, steps, warm = _cfg(r, "batch_size"), _cfg(r, "steps"), _cfg(r, "warmup") or 0
    if not n or not bs or steps is None:
        return None
    per_epoch = n // bs if split == "train" else -(-n // bs)  # train drops the partial batch
    return max(0, (steps + warm - 1) // max(1, per_epoch))


def _opts(r: dict) -> str:
    o = _cfg(r, "loader_options") or ""
    return ",".join(f"{k}={v}" for k, v in o.items()) if isinstance(o, dict) else str(o)


def _row_tail(r: dict) -> str:
    return f"{r['status']} {(r.get('error') or '')[:80]}"


def tables(records: list[dict]) -> None:
    print("\nloader mode (images/s; starts = epoch starts inside the window)")
    for r in records:
        if r["kind"] == "loader":
            m = r["metrics"]
            print(f"  {r['loader']:<16} {_opts(r):<16} {str(r.get('variant')):<6} "
                  f"{r['dataset']['name']:<20} {str(epoch_starts(r)):>6} {m.get('images_per_sec', 0):>10.1f}  {_row_tail(r)}")
    print("\ntrain (images/s; ratio to synthetic; data-wait fraction; epoch starts inside the window)")
    for r in records:
        if r["kind"] == "train":
            m = r["metrics"]
            mode = "compile" if _cfg(r, "compile") else "eager"
            ratio = m.get("ratio_to_synthetic")
            print(f"  {str(r['arch']):<9} {mode:<8} {r['loader']:<16} {_opts(r):<12} "
                  f"{r['dataset']['name']:<20} {str(epoch_starts(r)):>3} {m.get('images_per_sec', 0):>9.1f}  "
                  f"{'' if ratio is None else f'{ratio:.3f}':>6}  {m.get('data_wait_frac', ''):>7}  {_row_tail(r)}")
    curves: dict = {}
    for r in records:
        if r["kind"] == "scaling" and r["status"] == "ok":
            curves.setdefault((r["loader"], r["variant"]), []).append(
                f"{r['metrics']['workers']}:{r['metrics']['images_per_sec']:.0f}")
    if curves:
        print("\nscaling (workers:images/s)")
        for (name, split), points in curves.items():
            print(f"  {name:<16} {split:<6} {'  '.join(points)}")


def _pytest(xml: Path) -> dict | None:
    if not xml.exists():
        return None
    import xml.etree.ElementTree as ET

    s = ET.parse(xml).getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    return {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def main(argv=None) -> int:
    rec, out, smoke, budget, wall = (argv or sys.argv[1:])[:5]
    out, smoke, budget, wall = Path(out), smoke == "1", int(budget), int(wall)
    steps = [dict(zip(("step", "outcome", "seconds"), line.split("\t")))
             for line in os.environ.get("STEPS_TSV", "").splitlines() if line]
    records = [json.loads(line) for line in open(rec)] if os.path.exists(rec) else []
    parity = json.loads((out / "parity.json").read_text()) if (out / "parity.json").exists() else None
    f = out / "parity_nvimgcodec.json"
    nvimg = json.loads(f.read_text()) if f.exists() else None
    pytest = _pytest(out / "pytest_gpu.xml")
    tables(records)
    if parity:
        print("\nparity vs torchvision (levels):", {k: parity[k]["mean_abs_levels"] for k in ("val", "train") if k in parity},
              "on", parity["device"])
    if nvimg:
        print("parity, decoder=nvimgcodec (levels):", {k: nvimg[k]["mean_abs_levels"] for k in ("val", "train") if k in nvimg})
    if pytest:
        print("pytest -m gpu:", pytest)
    bad = [s for s in steps if s["outcome"] != "ok" and not s["outcome"].startswith("skipped:")]
    skipped = [s for s in steps if s["outcome"].startswith("skipped:")]
    for st in steps:
        st["seconds"] = int(st["seconds"])
    ok = len(steps) - len(bad) - len(skipped)
    print(f"\n{len(records)} records in {rec}; steps: {ok} ok, {len(skipped)} skipped on purpose, "
          f"{len(bad)} failed/timed out/cut; {wall}s of {budget}s")
    from bench.results import append, make_record

    metrics = {"steps": steps, "steps_ok": ok, "steps_failed": len(bad), "steps_total": len(steps), "wall_s": wall,
               "budget_s": budget, "records": len(records), "smoke": smoke, "pytest_gpu": pytest,
               "parity_val_levels": parity and parity.get("val", {}).get("mean_abs_levels"),
               "parity_train_levels": parity and parity.get("train", {}).get("mean_abs_levels"),
               "parity_device": parity and parity.get("device"),
               "parity_nvimgcodec_val_levels": nvimg and nvimg.get("val", {}).get("mean_abs_levels"),
               "parity_nvimgcodec_train_levels": nvimg and nvimg.get("train", {}).get("mean_abs_levels")}
    append(make_record("gpu_check", variant="smoke" if smoke else "full", metrics=metrics,
                       status="ok" if not bad else "error",
                       error="; ".join(f"{s['step']}: {s['outcome']}" for s in bad) or None), rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
