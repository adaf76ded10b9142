"""Result records: one JSON object per line, appended atomically, each with the config and
the hardware fingerprint (reports group on it; nothing in a report is typed by hand)."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .hardware import fingerprint, slug
from .schema import SCHEMA, clean, upgrade

KINDS = ("loader", "train", "eval", "accuracy", "epoch", "ceiling", "tune", "benchmark", "gpu_check", "scaling")
RUN_ID = uuid.uuid4().hex[:12]  # one per process: groups the records of one invocation
REPO = Path(__file__).resolve().parents[2]


def git_info() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short=12", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def committed_path() -> Path:
    """This machine's curated records: results/<machine>.jsonl, tracked by git, read by the report."""
    return REPO / "results" / f"{slug()}.jsonl"


def default_path() -> Path:
    """Where a run's records go unless --out says otherwise: a local file git ignores, so that
    an ad-hoc trial never changes the committed results (`make bench` writes committed_path())."""
    return REPO / "results" / "local" / f"{slug()}.jsonl"


def out_path(out: str | Path | None) -> Path:
    """--out as a file: none -> default_path(); a folder -> <folder>/<machine>.jsonl."""
    if out is None:
        return default_path()
    p = Path(out)
    return p / f"{slug()}.jsonl" if p.is_dir() else p


def make_record(kind: str, *, loader=None, variant=None, arch=None, dataset=None, config=None,
                metrics=None, status="ok", error=None, **extra) -> dict:
    assert kind in KINDS, kind
    config, metrics = clean(config or {}, metrics or {})  # settings in config, per-run facts in metrics
    rec = {
        "schema": SCHEMA,
        "run_id": RUN_ID,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "kind": kind,
        "loader": loader,
        "variant": variant,
        "arch": arch,
        "dataset": dataset or {},
        "config": config,
        "hardware": fingerprint(),
        "metrics": metrics,
        "status": status,
        "error": error,
    }
    rec.update(extra)
    return rec


def append(record: dict, path: str | Path | None = None) -> Path:
    """Append one line under an exclusive lock: several processes (ranks, parallel runs) may
    append at once and no line is lost or interleaved."""
    path = Path(path) if path else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False, default=str) + "\n"
    while True:
        with open(path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            # The file may have been replaced while we waited (git checkout, an editor): lock the current one.
            if os.path.exists(path) and os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                f.seek(0, os.SEEK_END)
                if f.tell() and not _ends_with_newline(f):
                    line = "\n" + line  # a killed writer left half a line: damage only that one
                f.write(line.encode())
                f.flush()
                os.fsync(f.fileno())
                return path


def _ends_with_newline(f) -> bool:
    f.seek(-1, os.SEEK_END)
    last = f.read(1)
    f.seek(0, os.SEEK_END)
    return last == b"\n"


# -- reading: one policy for every reader ---------------------------------------------------
@dataclass(frozen=True)
class Skipped:
    """A line that is not a record: named by file and line, counted, never fatal."""
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class Records(list):
    """The records read (a list, in file order) and the lines skipped (`.skipped`)."""

    def __init__(self, items=(), skipped=()):
        super().__init__(items)
        self.skipped: list[Skipped] = list(skipped)


_warned: set = set()


def warn_stderr(s: Skipped) -> None:
    """Say once per process and line that a line was skipped (the ceiling lookup reads the
    same file for every loader)."""
    if (s.path, s.line, s.reason) not in _warned:
        _warned.add((s.path, s.line, s.reason))
        print(f"warning: skipped {s}", file=sys.stderr)


def problem(rec) -> str | None:
    """Why a parsed line is no record this code can read (None: it is one). Every table groups
    by the hardware fingerprint, so a record without one would stop the whole report."""
    if not isinstance(rec, dict) or not rec.get("kind"):
        return "not a record (no kind)"
    hw = rec.get("hardware")
    if not isinstance(hw, dict) or not (hw.get("id") or hw.get("cpu")):
        return "no hardware fingerprint (hardware.id / hardware.cpu)"
    try:
        schema = int(rec.get("schema") or 1)
    except (TypeError, ValueError):
        return f"schema {rec.get('schema')!r} is not a number"
    if schema > SCHEMA:
        return f"schema {schema} is newer than this code reads ({SCHEMA}): update loaderbench"
    return None


def parse(text: str, source: str, warn=warn_stderr) -> Records:
    """Records from JSON-lines text, each brought to the current schema; a line that is no
    record (a truncated write, a merge marker, no fingerprint, a newer schema) is skipped and
    reported."""
    out = Records()
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            reason = problem(rec)
        except json.JSONDecodeError as e:
            rec, reason = None, f"not JSON ({e.msg}, column {e.colno})"
        if reason:
            out.skipped.append(Skipped(str(source), i, reason))
            if warn:
                warn(out.skipped[-1])
            continue
        out.append(_normalise(upgrade(rec)))
    return out


def _normalise(rec: dict) -> dict:
    for k in ("dataset", "config", "hardware", "metrics", "git"):
        if not isinstance(rec.get(k), dict):
            rec[k] = {}
    rec.setdefault("status", "ok")
    return rec


def load(paths, warn=warn_stderr) -> Records:
    """Records from files (missing files raise OSError). Unreadable lines are skipped, named
    and counted in `.skipped` (and told to `warn`, stderr by default)."""
    out = Records()
    for p in paths:
        got = parse(Path(p).read_text(errors="replace"), str(p), warn)
        out += got
        out.skipped += got.skipped
    return out
