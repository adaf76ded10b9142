"""Hardware comparison report: result records → results/REPORT.md, report.html, plots/*.png.

    python -m bench.report [FILES...] [--out DIR]     # default: every results/*.jsonl
    python -m bench.report --summary                  # compact terminal table, writes nothing

Every figure comes from a record. Records are grouped by the hardware fingerprint's `id`
(CPU model, cores, GPU model and count). Two definitions carry the comparisons:

* workload = (kind, loader, variant, arch, dataset name): what was measured.
* configuration key = workload + dataset fingerprint + the resolved config, minus the keys in
  IGNORED (where output goes). Records are "the same configuration" only when these match;
  where a comparison spans different configurations (machines usually differ in `device`),
  the table says what differs.

A regression: the latest record of a configuration on a machine is more than THRESHOLD (10%)
below the previous record of that same configuration on that machine, in its headline metric
(images_per_sec; top-1 for accuracy runs), or it failed where the previous one succeeded.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..results.hardware import machine_label
from ..results import REPO

THRESHOLD = 0.10
IGNORED = {"out", "output", "results", "results_path", "log", "log_every", "progress", "quiet", "verbose",
           # per-run counters a backend reports beside its settings (torchvision-gpu), not configuration
           "device_decoded", "cpu_fallbacks", "device_decode_errors", "fallback_reasons", "read_wait_s", "decode_s", "augment_s"}
VERSIONS = ("torch", "torchvision", "dali", "ffcv", "pillow", "python", "cuda", "driver")
NO_HISTORY = {"epoch"}  # per-epoch rows belong to an accuracy run, not a configuration of their own
DASH = "—"


# ── records ──────────────────────────────────────────────────────────────────────────────
def read(paths) -> tuple[list[dict], list[str]]:
    """Records from JSON-lines files; a bad line is skipped and reported, never fatal."""
    recs, skipped = [], []
    for p in paths:
        for i, line in enumerate(Path(p).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                assert isinstance(r, dict)
            except (json.JSONDecodeError, AssertionError):
                skipped.append(f"{p}:{i}")
                continue
            for k in ("dataset", "config", "hardware", "metrics", "git"):
                r[k] = r.get(k) or {}
            r.setdefault("status", "ok")
            recs.append(r)
    recs.sort(key=lambda r: str(r.get("time") or ""))
    return recs, skipped


def mid(r) -> str:
    hw = r["hardware"]
    return hw.get("id") or f"{hw.get('cpu')}|{hw.get('cores')}|{hw.get('gpu')}|{hw.get('gpu_count')}"


def workload(r) -> tuple:
    return (r.get("kind"), r.get("loader"), r.get("variant"), r.get("arch"), r["dataset"].get("name"))


def config_of(r) -> dict:
    """The resolved config, nested dicts flattened to dotted keys (so a difference names its key)."""
    def flat(d, pre=""):
        for k, v in d.items():
            if k in IGNORED:
                continue
            if isinstance(v, dict):
                yield from flat(v, f"{pre}{k}.")
            else:
                yield f"{pre}{k}", v

    cfg = dict(flat(r["config"]))
    cfg["dataset.fingerprint"] = r["dataset"].get("fingerprint")
    return cfg


def config_key(r) -> str:
    return json.dumps([workload(r), config_of(r)], sort_keys=True, default=str)


def differs(a: dict, b: dict) -> list[str]:
    """'key: a → b' for every key whose value differs (missing keys shown as —)."""
    return [f"{k}: {_s(a.get(k))} → {_s(b.get(k))}" for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]


def _s(v) -> str:
    return DASH if v is None else str(v)


def latest(recs) -> list[dict]:
    """The latest record of each (machine, configuration key), in time order."""
    out = {}
    for r in recs:
        out[(mid(r), config_key(r))] = r
    return list(out.values())


def headline(r) -> tuple[str, float | None]:
    m = "top1" if r.get("kind") == "accuracy" else "images_per_sec"
    return m, r["metrics"].get(m)


@dataclass
class Machine:
    id: str
    label: str
    hw: dict
    count: int = 0
    versions: dict = field(default_factory=dict)


def machines(recs) -> dict[str, Machine]:
    """One Machine per fingerprint id, CPU-only ones first; labels made unique."""
    ms: dict[str, Machine] = {}
    for r in recs:
        hw = r["hardware"]
        m = ms.setdefault(mid(r), Machine(mid(r), hw.get("label") or machine_label(hw), hw))
        m.count += 1
        m.hw = hw  # the latest record's view of the machine
        for k in VERSIONS:
            if hw.get(k) and hw[k] not in m.versions.setdefault(k, []):
                m.versions[k].append(hw[k])
    seen = defaultdict(int)
    for m in ms.values():
        seen[m.label] += 1
    for m in ms.values():
        if seen[m.label] > 1:
            m.label += f" [{m.id[:6]}]"
    return dict(sorted(ms.items(), key=lambda kv: (bool(kv[1].hw.get("gpu")), kv[1].label)))


# ── formatting ───────────────────────────────────────────────────────────────────────────
def ips(v) -> str:
    return DASH if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def ratio(v) -> str:
    return DASH if v is None else f"{v:.2f}"


def pct(v) -> str:
    return DASH if v is None else f"{100 * v:.0f}%"


def acc(v) -> float | None:
    """top-1/5 in percent: records may hold a fraction (≤ 1) or a percentage."""
    return None if v is None else 100 * v if v <= 1 else v


def accs(v) -> str:
    return DASH if v is None else f"{acc(v):.1f}%"


def dur(s) -> str:
    if s is None:
        return DASH
    s = float(s)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.2f} h"


def brief(cfg: dict, keys=("batch_size", "res", "workers", "device", "compile", "loader_options")) -> str:
    return ", ".join(f"{k} {cfg[k]}" for k in keys if cfg.get(k) not in (None, False)) or DASH


def status(r) -> str:
    return "ok" if r["status"] == "ok" else f"{r['status']}: {(r.get('error') or '').splitlines()[0][:80] if r.get('error') else ''}".rstrip(": ")


# ── tables ───────────────────────────────────────────────────────────────────────────────
@dataclass
class Table:
    title: str
    intro: str
    headers: list[str]
    rows: list[tuple[list[str], str]] = field(default_factory=list)  # (cells, css class)
    plots: list[str] = field(default_factory=list)

    def add(self, cells, cls=""):
        self.rows.append(([str(c) for c in cells], cls))


def _cls(r) -> str:
    return "" if r["status"] == "ok" else "fail"


def build_tables(recs, ms) -> list[Table]:
    last = latest(recs)
    by = lambda kind: sorted((r for r in last if r.get("kind") == kind),
                             key=lambda r: (str(r.get("arch")), str(r.get("loader")), str(r.get("variant")), list(ms).index(mid(r))))
    label = lambda r: ms[mid(r)].label
    tables = []

    t = Table("Machines", "One row per hardware fingerprint; versions seen in its records.",
              ["machine", "id", "CPU", "cores", "RAM GB", "GPU", "GPU GB", "driver / CUDA", "torch", "torchvision", "DALI", "FFCV", "Pillow", "Python", "OS", "records"])
    for m in ms.values():
        v = lambda k: " / ".join(map(str, m.versions.get(k, []))) or DASH
        gpu = f"{m.hw['gpu']} ×{m.hw.get('gpu_count', 1)}" if m.hw.get("gpu") else "none"
        t.add([m.label, m.id, _s(m.hw.get("cpu")), _s(m.hw.get("cores")), _s(m.hw.get("ram_gb")), gpu, _s(m.hw.get("gpu_mem_gb")),
               f"{v('driver')} / {v('cuda')}", v("torch"), v("torchvision"), v("dali"), v("ffcv"), v("pillow"), v("python"), _s(m.hw.get("os")), m.count])
    tables.append(t)

    ceil = {mid(r): r["metrics"].get("images_per_sec") for r in recs if r.get("kind") == "ceiling" and r["status"] == "ok"}
    t = Table("Loader-only throughput", "Images/sec of the loader alone (per-step p10/p50/p90), latest record per configuration. "
              "Ceiling ratio: as recorded, else images/sec ÷ the machine's latest `ceiling` record (marked *).",
              ["backend", "split", "machine", "images/s", "p10", "p50", "p90", "ceiling ratio", "config", "status"], plots=["loader_throughput.png"])
    for r in by("ceiling"):
        m = r["metrics"]
        t.add(["ceiling", DASH, label(r), ips(m.get("images_per_sec")), DASH, DASH, DASH, "1.00", f"{ips(m.get('per_core'))}/core, " + brief(r["config"]), status(r)], _cls(r))
    for r in by("loader"):
        m = r["metrics"]
        cr = ratio(m.get("ceiling_ratio"))
        if m.get("ceiling_ratio") is None and m.get("images_per_sec") and ceil.get(mid(r)):
            cr = ratio(m["images_per_sec"] / ceil[mid(r)]) + "*"
        t.add([r.get("loader"), r.get("variant"), label(r), ips(m.get("images_per_sec")), ips(m.get("p10")), ips(m.get("p50")), ips(m.get("p90")), cr, brief(r["config"]), status(r)], _cls(r))
    tables.append(t)

    t = Table("Training throughput", "End-to-end training images/sec per architecture × loader; ratio to the synthetic loader "
              "(compute only) for the same architecture and configuration; share of step time spent waiting for data.",
              ["arch", "loader", "machine", "images/s", "p50", "synthetic img/s", "ratio to synthetic", "data wait", "config", "status"],
              plots=["train_throughput.png", "data_wait.png"])
    for r in by("train"):
        m = r["metrics"]
        rs = m.get("ratio_to_synthetic")
        if rs is None and m.get("images_per_sec") and m.get("compute_ips"):
            rs = m["images_per_sec"] / m["compute_ips"]
        t.add([r.get("arch"), r.get("loader"), label(r), ips(m.get("images_per_sec")), ips(m.get("p50")), ips(m.get("compute_ips")), ratio(rs),
               pct(m.get("data_wait_frac")), brief(r["config"], ("batch_size", "res", "amp", "channels_last", "compile", "workers", "device")), status(r)], _cls(r))
    tables.append(t)

    t = Table("Accuracy", "Final records of accuracy runs, and evaluation records; curves from the per-epoch records.",
              ["arch", "loader", "machine", "kind", "top-1", "top-5", "epochs", "wall time", "images/s", "config", "status"], plots=["accuracy_vs_time.png"])
    for r in sorted(by("accuracy") + by("eval"), key=lambda r: (str(r.get("arch")), str(r.get("loader")), r["kind"])):
        m = r["metrics"]
        t.add([r.get("arch"), r.get("loader"), label(r), r["kind"], accs(m.get("top1")), accs(m.get("top5")), _s(m.get("epochs")), dur(m.get("wall_s")),
               ips(m.get("images_per_sec")), brief(r["config"], ("recipe", "batch_size", "res", "val_res", "device")), status(r)], _cls(r))
    tables.append(t)

    tables.append(speedups(last, ms))
    tables.append(history(recs, ms))

    other = [r for r in last if r.get("kind") not in {"loader", "ceiling", "train", "eval", "accuracy", "epoch"}]
    if other:
        t = Table("Other records", "Kinds this report does not chart, latest per configuration.", ["kind", "loader", "variant", "arch", "machine", "metrics", "status"])
        for r in other:
            mt = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(r["metrics"].items())[:6]) or DASH
            t.add([r.get("kind"), _s(r.get("loader")), _s(r.get("variant")), _s(r.get("arch")), label(r), mt, status(r)], _cls(r))
        tables.append(t)

    bad = [r for r in recs if r["status"] != "ok"]
    t = Table("Errors and unavailable", "Every record whose status is not ok.", ["time", "kind", "loader", "variant", "arch", "machine", "status", "error"])
    for r in bad:
        t.add([_s(r.get("time")), r.get("kind"), _s(r.get("loader")), _s(r.get("variant")), _s(r.get("arch")), label(r), r["status"], (r.get("error") or DASH)[:200]], "fail")
    tables.append(t)
    return tables


def speedups(last, ms) -> Table:
    """Same workload on several machines: each machine against the first one listed (CPU first)."""
    t = Table("Speedups between machines", "Headline metric of the same workload on each machine against the first machine "
              "that ran it. Where the configurations differ, the last column says how.",
              ["kind", "workload", "baseline", "baseline value", "machine", "value", "speedup", "config differs"])
    groups = defaultdict(lambda: defaultdict(list))
    for r in last:
        if r["status"] == "ok" and r.get("kind") not in NO_HISTORY and headline(r)[1]:
            groups[workload(r)][mid(r)].append(r)
    order = list(ms)
    for wl, per in sorted(groups.items(), key=lambda kv: json.dumps(kv[0], default=str)):
        ids = sorted(per, key=order.index)
        for i in ids[1:]:
            for r in per[i]:  # each configuration, against the baseline's closest configuration
                base = min(per[ids[0]], key=lambda b: len(differs(config_of(b), config_of(r))))
                name, v = headline(r)
                d = differs(config_of(base), config_of(r))
                t.add([wl[0], " / ".join(str(x) for x in wl[1:] if x), ms[ids[0]].label, f"{name} {_fmt(name, headline(base)[1])}", ms[i].label,
                       _fmt(name, v), f"{v / headline(base)[1]:.2f}×", "; ".join(d) or "same config"])
    return t


def _fmt(name, v) -> str:
    return accs(v) if name == "top1" else ips(v)


def history(recs, ms) -> Table:
    """Latest vs previous record of each configuration on each machine."""
    t = Table("Latest vs previous", f"Per machine and configuration key, the latest record against the one before it. "
              f"REGRESSION: more than {THRESHOLD:.0%} below the previous value, or failed after an ok run. "
              "Where a workload's latest configuration has no predecessor but an earlier configuration does, the row says what differs instead.",
              ["machine", "kind", "workload", "metric", "previous", "latest", "change", "flag", "notes"])
    runs = defaultdict(list)
    for r in recs:
        if r.get("kind") not in NO_HISTORY:
            runs[(mid(r), workload(r))].append(r)
    for (m, wl), rs in sorted(runs.items(), key=lambda kv: (list(ms).index(kv[0][0]), json.dumps(kv[0][1], default=str))):
        bykey = defaultdict(list)
        for r in rs:
            bykey[config_key(r)].append(r)
        name_wl = " / ".join(str(x) for x in wl[1:] if x)
        for key, same in bykey.items():
            new = same[-1]
            name = headline(new)[0]
            if len(same) < 2:
                if new is rs[-1] and len(rs) > 1:  # the latest run changed configuration
                    prev = rs[-2]
                    t.add([ms[m].label, wl[0], name_wl, name, _fmt(name, headline(prev)[1]), _fmt(name, headline(new)[1]), DASH, "not compared",
                           "config differs: " + "; ".join(differs(config_of(prev), config_of(new)))])
                continue
            old = same[-2]
            a, b = headline(old)[1], headline(new)[1]
            notes = "; ".join(differs({k: old["hardware"].get(k) for k in VERSIONS}, {k: new["hardware"].get(k) for k in VERSIONS})
                              + differs({"commit": old["git"].get("commit")}, {"commit": new["git"].get("commit")}))
            if new["status"] != "ok":
                flag, change = ("REGRESSION" if old["status"] == "ok" else "still failing"), new["status"]
            elif old["status"] != "ok" or not a or b is None:
                flag, change = "", DASH
            else:
                change = f"{(b - a) / a:+.1%}"
                flag = "REGRESSION" if b < a * (1 - THRESHOLD) else ""
            t.add([ms[m].label, wl[0], name_wl, name, _fmt(name, a), _fmt(name, b), change, flag, notes or DASH], "regress" if flag == "REGRESSION" else "")
    return t


def report(paths, out: Path) -> dict[str, Path]:
    from .plots import write_plots
    from .render import html_page, markdown

    recs, skipped = read(paths)
    ms = machines(recs)
    tables = build_tables(recs, ms)
    plot_dir = out / "plots"
    write_plots(recs, ms, plot_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "REPORT.md").write_text(markdown(tables, paths, skipped))
    (out / "report.html").write_text(html_page(tables, paths, skipped, plot_dir))
    return {"md": out / "REPORT.md", "html": out / "report.html", "plots": plot_dir}


def summary(paths) -> str:
    """Compact terminal table of the latest loader, ceiling and accuracy records."""
    recs, _ = read(paths)
    ms = machines(recs)
    rows = [("machine", "kind", "what", "images/s", "ceil", "top-1", "status")]
    for r in latest(recs):
        if r.get("kind") in ("loader", "ceiling", "accuracy"):
            m = r["metrics"]
            what = " ".join(str(x) for x in (r.get("arch"), r.get("loader"), r.get("variant")) if x) or DASH
            rows.append((ms[mid(r)].label[:40], r["kind"], what, ips(m.get("images_per_sec")), ratio(m.get("ceiling_ratio")),
                         accs(m.get("top1")), status(r)[:50]))
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="result files (default: every results/*.jsonl)")
    ap.add_argument("--out", type=Path, default=REPO / "results", help="output folder (default: results/)")
    ap.add_argument("--summary", action="store_true", help="print a compact table of the latest records and exit")
    a = ap.parse_args(argv)
    files = a.files or sorted((REPO / "results").glob("*.jsonl"))
    if not files:
        print("no result files: run `python -m bench.run` first, or name files", file=sys.stderr)
        return 1
    if a.summary:
        print(summary(files))
        return 0
    done = report(files, a.out)
    print(f"wrote {done['md']}, {done['html']}, {done['plots']}/*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
