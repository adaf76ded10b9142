"""Turn a pytest-benchmark `--benchmark-json` file into result records (kind "benchmark").

    .venv/bin/python -m pytest tests/benchmarks --benchmark-only --benchmark-json bench.json
    .venv/bin/python -m bench.results.benchjson bench.json            # -> results/<machine>.jsonl
    .venv/bin/python -m bench.results.benchjson bench.json --out /tmp/x.jsonl

One record per benchmark case: loader / variant / arch from the case's extra_info (or its
name), metrics = images_per_sec and friends from extra_info plus pytest-benchmark's timing
stats (seconds per round) and when/where it ran (metrics.pytest_benchmark), the hardware fingerprint from extra_info when the case recorded one
(it was measured where the benchmark ran) or of this machine otherwise. Cases whose
extra_info has no images_per_sec (e.g. untimed runs) are kept with what they have.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .records import append, default_path, make_record

STATS = ("min", "max", "mean", "median", "stddev", "iqr", "rounds", "iterations", "ops")


def records(doc: dict) -> list[dict]:
    out = []
    commit = doc.get("commit_info") or {}
    for b in doc.get("benchmarks", []):
        extra = dict(b.get("extra_info") or {})
        hardware = extra.pop("hardware", None)
        stats = b.get("stats") or {}
        metrics = {k: v for k, v in extra.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics.update({f"round_s_{k}" if k not in ("rounds", "iterations", "ops") else k: stats[k] for k in STATS if k in stats})
        config = {"benchmark": b.get("fullname") or b.get("name"), "group": b.get("group"), "params": b.get("params"),
                  "extra": {k: v for k, v in extra.items() if k not in metrics}}
        # when and at which commit the benchmark ran: facts of this run, not configuration
        metrics["pytest_benchmark"] = {"version": doc.get("version"), "datetime": doc.get("datetime"),
                                       "commit": commit.get("id"), "dirty": commit.get("dirty")}
        params = b.get("params") or {}
        rec = make_record("benchmark", loader=extra.get("loader") or params.get("name"),
                          variant=extra.get("variant") or params.get("split") or b.get("name"),
                          arch=extra.get("arch") or params.get("arch"), config=config, metrics=metrics)
        if hardware:
            rec["hardware"] = hardware
        out.append(rec)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.results.benchjson", description=__doc__.splitlines()[0])
    p.add_argument("json", help="a pytest-benchmark --benchmark-json file")
    p.add_argument("--out", help=f"results file (default {default_path()})")
    args = p.parse_args(argv)
    try:
        doc = json.loads(Path(args.json).read_text())
    except (OSError, ValueError) as e:
        print(f"error: {args.json}: {e}", file=sys.stderr)
        return 2
    recs = records(doc)
    for r in recs:
        append(r, args.out)
    print(f"{len(recs)} benchmark records appended to {args.out or default_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
