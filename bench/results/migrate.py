"""Rewrite records files in the current schema (see bench.results.schema for what changes).

    python -m bench.results.migrate                  # every results/*.jsonl, rewritten in place
    python -m bench.results.migrate FILE... --check  # exit 1 if a file still needs migrating

Idempotent: a second run changes nothing. Unreadable lines are kept byte for byte (and named):
a migration never drops data. The file is rewritten in place under the appenders' lock, so a
run appending at the same time loses no line.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import sys
from pathlib import Path

from .schema import SCHEMA, upgrade


def migrate_text(text: str) -> tuple[str, int, list[int]]:
    """(new text, records changed, unreadable line numbers). Lines keep their order; an
    unreadable line is kept byte for byte."""
    lines, changed, bad = [], 0, []
    for i, line in enumerate(text.splitlines(), 1):
        rec = _record(line)
        if rec is None:
            bad += [i] if line.strip() else []
            lines.append(line)
            continue
        new = upgrade(rec)
        changed += new is not rec
        lines.append(line if new is rec else json.dumps(new, default=str))
    return "".join(f"{ln}\n" for ln in lines), changed, bad


def _record(line: str) -> dict | None:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None


def migrate_file(path: Path, check: bool = False) -> tuple[int, list[int]]:
    """(records changed, unreadable line numbers); rewritten in place unless `check`."""
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        new, changed, bad = migrate_text(f.read())
        if changed and not check:
            f.seek(0)
            f.write(new)
            f.truncate()
            f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
    return changed, bad


def main(argv=None) -> int:
    from .records import REPO

    p = argparse.ArgumentParser(prog="python -m bench.results.migrate", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, help="records files (default: every results/*.jsonl)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file needs migrating")
    a = p.parse_args(argv)
    files = a.files or sorted((REPO / "results").glob("*.jsonl"))
    pending = 0
    for path in files:
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        changed, bad = migrate_file(path, a.check)
        pending += changed
        verb = "need migrating" if a.check else "migrated"
        note = f"; unreadable lines kept as they were: {', '.join(map(str, bad))}" if bad else ""
        print(f"{path}: {changed} records {verb} to schema {SCHEMA}{note}")
    return 1 if a.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
