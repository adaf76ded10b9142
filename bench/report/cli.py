"""`python -m bench.report`: the command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..results import REPO, load
from .document import text_table

USAGE = """\
python -m bench.report [FILES...] [--out DIR]   write REPORT.md, report.html, plots/ (default: results/*.jsonl → results/)
python -m bench.report --since TIME             the same, then the table of the records written since TIME
python -m bench.report --summary                the headline rows as a terminal table; writes nothing
python -m bench.report --json                   the headline rows as JSON lines; writes nothing
python -m bench.report --compare A B            two record sets (files, machines, git commits), configuration by
                                                configuration; exit 1 when a regression is flagged"""


def parser() -> argparse.ArgumentParser:
    from ..cli.parser import Parser  # one-line errors with a "did you mean"

    ap = Parser(prog="python -m bench.report", usage=USAGE, description="Hardware comparison report from result records.")
    ap.add_argument("files", nargs="*", type=Path, help="records files (default: every results/*.jsonl)")
    ap.add_argument("--out", type=Path, default=REPO / "results", help="output folder (default: results/)")
    ap.add_argument("--feature-maps", type=Path, default=None, help="folder of bench.visualize PNGs per arch (default: OUT/feature_maps)")
    ap.add_argument("--summary", action="store_true", help="print the headline rows as a table and exit")
    ap.add_argument("--json", action="store_true", help="print the headline rows (and plan rows) as JSON lines and exit")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two record sets: files, machine ids/labels, or git commits")
    ap.add_argument("--since", metavar="TIME", help="after writing, print the records written since TIME (UTC, ISO) and where they are")
    return ap


def _compare(a, files) -> int:
    from .compare import CompareError, compare, resolve

    pool = load(files)
    _count_skipped(pool)
    try:
        (la, ra), (lb, rb) = resolve(a.compare[0], pool), resolve(a.compare[1], pool)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t, n = compare(ra, rb)
    if a.json:
        for row in t.dicts():
            print(json.dumps(row))
    else:
        print(f"A: {la} ({len(ra)} records)\nB: {lb} ({len(rb)} records)\n")
        print(text_table(t) if t.rows else "no configuration in common")
    print(f"\n{n['compared']} configurations compared, {n['regressions']} regressions; only in A: {n['only_a']}, "
          f"only in B: {n['only_b']}", file=sys.stderr if a.json else sys.stdout)
    return 1 if n["regressions"] else 0


def _count_skipped(recs) -> None:
    """The count after the per-line warnings (stderr: stdout stays the rows)."""
    if recs.skipped:
        print(f"{len(recs.skipped)} unreadable line(s) skipped", file=sys.stderr)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    files = a.files or sorted((REPO / "results").glob("*.jsonl"))
    bad = [f"no such records file: {f}" if not f.exists() else f"a folder, not a records file: {f} (name its .jsonl files)"
           for f in files if not f.is_file()]
    if bad:
        print("error: " + "; ".join(bad), file=sys.stderr)
        return 2
    if a.compare:
        return _compare(a, files)
    if not files:
        print("error: no records files: run `python -m bench.run` first, or name files", file=sys.stderr)
        return 1
    from .build import model, since, summary, write_report

    if a.json:
        from .jsonrows import json_rows

        recs = load(files)
        md = model(recs)
        for row in json_rows(md.hs, md.cs, md.ms):
            print(json.dumps(row, default=str))
        _count_skipped(recs)
        return 0
    if a.summary:
        print(text_table(summary(files)))
        return 0
    return _write(a, files, since, write_report)


def _short(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _write(a, files, since, write_report) -> int:
    if a.since:
        try:
            since(files, a.since)  # a bad --since fails before anything is written
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    a.out.mkdir(parents=True, exist_ok=True)
    done = write_report(files, a.out, a.feature_maps or a.out / "feature_maps")
    skipped = f" ({len(done['skipped'])} unreadable lines skipped)" if done["skipped"] else ""
    read = ", ".join(_short(f) for f in files)
    where = f"report: {done['md']}, {done['html']}, {done['plots']}/*.png{skipped}\nread {len(files)} records files: {read}"
    if not a.since:
        print(f"wrote {where}")
        return 0
    table, holders = since(files, a.since)
    print(text_table(table) if table else f"no records written since {a.since}")
    print(f"\nrecords: {', '.join(holders) or '(none)'}\n{where}")
    return 0
